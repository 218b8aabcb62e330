"""A call's deadline: its time limit, which stands still while its client is asked something a person may answer.

Each upstream request runs inside its `Deadline`: an anyio cancel scope, cancelled when the call's time is up exactly
as a scope given a `deadline` cancels itself (`cancel("deadline exceeded")`, from a loop callback, once the loop's
clock has reached it; at once if it has on entry), so what runs inside sees the very same cancellation: delivered
until the scope is left, held off by shielded scopes, told apart from any other cancellation by the scope.

Only the timer differs: a scope with a deadline arms a loop timer of its own on entry and cancels it on exit; a
`Deadline` is an entry of the loop's shared timer (`mcp_hub/timers.py`), counted in while its scope is entered and
its time runs, so a call that ends in time (most do) costs no timer of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import anyio

from mcp_hub.scopes import cancel_scope, current_time
from mcp_hub.timers import SharedTimer, loop_timer

EXCEEDED = "deadline exceeded"
"""The reason anyio gives a scope cancelled by its deadline."""


class Deadline:
    """A call's time limit that stands still while its client is being asked something a person may answer.

    Enter it (`with deadline:`) around the request: the call runs in `scope`, which is cancelled when the time is up.
    Its time starts when it is made.
    """

    __slots__ = ("_paused", "_remaining", "_timer", "at", "scope", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = current_time() + seconds
        """When the time is up, on the loop's clock; `math.inf` while it stands still."""
        self.scope = cancel_scope()
        self._timer: SharedTimer | None = None
        """The loop's timer while the scope is entered."""
        self._paused = 0
        self._remaining = seconds

    def __enter__(self) -> anyio.CancelScope:
        scope = self.scope.__enter__()
        self._timer = loop_timer()
        if self._paused == 0:
            self._start()
        return scope

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        if self._timer is not None:
            self._timer.discard(self)
            self._timer = None
        return self.scope.__exit__(kind, error, traceback)

    @property
    def expired(self) -> bool:
        """Whether the call ran out of time: the scope was cancelled by its deadline, and caught that."""
        return self.scope.cancelled_caught

    def due(self) -> None:
        """The time is up: cancel the call's scope, as anyio cancels a scope at its deadline."""
        self.scope.cancel(EXCEEDED)

    def _start(self) -> None:
        if current_time() >= self.at:
            self.due()  # as a scope entered past its deadline cancels itself at once
        elif self._timer is not None:
            self._timer.add(self)

    @contextmanager
    def paused(self) -> Iterator[None]:
        if self._paused == 0:
            self._remaining = max(self.at - current_time(), 0.0)
            self.at = math.inf
            if self._timer is not None:
                self._timer.discard(self)
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1
            if self._paused == 0:
                self.at = current_time() + self._remaining
                if self._timer is not None:
                    self._start()
