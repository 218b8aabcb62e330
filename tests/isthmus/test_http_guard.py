"""`Deadline`: a deadline that moves on every request, checked by one timer, against a loop whose clock the test
moves by hand; and the uvicorn method the keep-alive deadline stands in for."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from isthmus.http_guard import Deadline


class Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """The two loop methods a `Deadline` uses; `advance` runs the timers that come due, as the loop would."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        self.timers.append(timer)
        return timer

    def advance(self, to: float) -> None:
        while due := sorted((t for t in self.timers if t.when <= to and not t.cancelled), key=lambda t: t.when):
            timer = due[0]
            self.timers.remove(timer)
            self.now = timer.when
            timer.callback()
        self.now = to

    @property
    def running(self) -> list[Timer]:
        return [timer for timer in self.timers if not timer.cancelled]


def deadline(clock: Clock, passed: list[float]) -> Deadline:
    return Deadline(cast(asyncio.AbstractEventLoop, cast(Any, clock)), lambda: passed.append(clock.now))


def test_a_deadline_that_keeps_moving_passes_only_once_nothing_moved_it_for_its_whole_length() -> None:
    clock, passed = Clock(), []
    body = deadline(clock, passed)
    body.set(1.0)
    for moment in (0.6, 1.2, 1.8):  # a body arriving in pieces, each within a second of the last
        clock.advance(moment)
        body.set(1.0)
    assert len(clock.running) == 1  # one timer all along, not one per piece
    clock.advance(2.7)
    assert passed == []
    clock.advance(2.8)
    assert passed == [2.8]
    assert clock.running == [] and body.when is None


def test_a_cleared_deadline_never_passes_and_a_new_one_counts_from_when_it_is_set() -> None:
    clock, passed = Clock(), []
    head = deadline(clock, passed)
    head.set(1.0)
    clock.advance(0.5)
    head.clear()  # the head came in time
    clock.advance(5.0)
    assert passed == [] and clock.running == []
    head.set(1.0)  # the next request on the connection
    clock.advance(5.9)
    assert passed == []
    clock.advance(6.0)
    assert passed == [6.0]


def test_stopping_a_deadline_cancels_its_timer() -> None:
    clock, passed = Clock(), []
    head = deadline(clock, passed)
    head.set(1.0)
    head.stop()
    assert clock.running == [] and head.handle is None
    clock.advance(10.0)
    assert passed == []


UVICORNS_RESPONSE_COMPLETE = [
    "def on_response_complete(self) -> None:",
    "self.server_state.total_requests += 1",
    "if self.transport.is_closing():",
    "return",
    "self._unset_keepalive_if_required()",
    "self.flow.resume_reading()",
    "if self.pipeline:",
    "cycle, app = self.pipeline.pop()",
    "self._start_asgi_task(cycle, app)",
    "else:",
    "self.timeout_keep_alive_task = self.loop.call_later(",
    "self.timeout_keep_alive, self.timeout_keep_alive_handler",
    ")",
]
"""uvicorn's `HttpToolsProtocol.on_response_complete`, its code lines stripped, as the guard's copy follows it."""


def test_the_keep_alive_deadline_follows_uvicorns_on_response_complete() -> None:
    # `GuardedHttpToolsProtocol.on_response_complete` does these steps with `idle` in place of the timer: a new
    # uvicorn that changes them fails here, rather than the gateway silently doing something else.
    source = inspect.getsource(HttpToolsProtocol.on_response_complete)
    lines = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert lines == UVICORNS_RESPONSE_COMPLETE
