"""Telling what is ready now from what has to be waited for, without ever waiting for it: the way a stream sends
together the frames that arrived together, and each other frame as soon as it exists.

`ready_or(step, meanwhile)` awaits `step` (the next frame, say). When `step` can finish without suspending (its data
is already buffered), that is all. When it would suspend, `meanwhile()` is awaited first (send what was gathered),
then `step` goes on: nothing waits for a frame that has not come yet, and no frame waits for one.

It works for any event loop: what `step` yields to the loop is passed up unchanged, and what the loop sends or
throws back goes to `step`. A cancellation (or any error) raised while `meanwhile()` runs is thrown into `step` too,
which is run to its end (its cleanup may await) before the error goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def ready_or(step: Awaitable[T], meanwhile: Callable[[], Awaitable[None]]) -> Awaitable[T]:
    """`step`'s result; `meanwhile()` is awaited first if, and only if, `step` has to wait."""
    return _ReadyOr(step, meanwhile)


class _ReadyOr(Awaitable[T]):
    __slots__ = ("meanwhile", "step")

    def __init__(self, step: Awaitable[T], meanwhile: Callable[[], Awaitable[None]]) -> None:
        self.step = step
        self.meanwhile = meanwhile

    def __await__(self) -> Generator[Any, Any, T]:
        waiting = self.step.__await__()
        try:
            signal = waiting.send(None)
        except StopIteration as done:
            result: T = done.value
            return result
        try:
            yield from self.meanwhile().__await__()
        except BaseException as exc:
            with contextlib.suppress(BaseException):  # `exc` is what the caller gets, whatever `step` made of it
                yield from _resume(waiting, signal, exc)
            raise
        return (yield from _resume(waiting, signal))


def _resume(waiting: Generator[Any, Any, T], signal: Any, error: BaseException | None = None) -> Generator[Any, Any, T]:
    """Go on with `waiting`, suspended on `signal` (after throwing `error` into it), as `yield from` would."""
    while True:
        try:
            if error is not None:
                thrown, error = error, None
                signal = waiting.throw(thrown)
                continue
            try:
                sent = yield signal
            except GeneratorExit:
                waiting.close()
                raise
            except BaseException as exc:
                error = exc
                continue
            signal = waiting.send(sent)
        except StopIteration as done:
            result: T = done.value
            return result
