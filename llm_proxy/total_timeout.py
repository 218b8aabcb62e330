"""`total_timeout` of a whole-answer request with one timer for all requests, not one each.

aiohttp measures a request's `total` timeout with a timer made for the request (`TimeoutHandle.start`, a uvloop
timer started and cancelled) and a `TimerContext` its waits enter: about 20,000 instructions per request, nearly
2% of what the gateway spends on a chat completion. Every request of one `Upstream` has the same total, so their
deadlines come in the order the requests start: `TotalTimeouts` keeps the requests under way in that order (a dict
keeps its insertion order) and one timer, armed for the oldest one's deadline. When it fires it times out each
request whose deadline has come, as aiohttp does (the request's task is cancelled and the cancellation leaves as
`TimeoutError`, unless the task was being cancelled anyway), and re-arms for the oldest one left.

The deadline is aiohttp's: `total` seconds from the request's start, rounded up to a whole second of the loop's
clock from `ceil_threshold` seconds on. The request goes to aiohttp with `total=None` (its connect and read
timeouts unchanged), which otherwise uses `total` only as the TLS handshake timeout of a connection through a proxy,
and the gateway's client uses none. Only `Upstream.post_json` uses it: its task awaits nothing but aiohttp while
timed, where aiohttp's timer would cancel it too. A stream is read by its consumer between other work, and
aiohttp's timer cancels only a wait under way: `stream_timeout.py` does that for `Upstream.post_stream`.
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import Generic, TypeVar

_TIMED_OUT = None
"""The deadline of a request timed out and not yet left."""

K = TypeVar("K", bound=Hashable)


class Deadlines(ABC, Generic[K]):
    """The deadlines of what is under way (`enter` to `leave`), each `seconds` after its start, so oldest first, and
    the one timer for the oldest; `_expire(key)` is called for each whose deadline comes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float, ceil_threshold: float) -> None:
        self._loop = loop
        self._seconds = seconds
        self._ceil = seconds >= ceil_threshold
        self._running: dict[K, float | None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = 0.0

    def enter(self, key: K) -> None:
        """`key`'s request starts: its deadline runs."""
        when = self._loop.time() + self._seconds
        if self._ceil:
            when = math.ceil(when)
        self._running[key] = when
        if self._timer is None:
            self._arm(when)

    def leave(self, key: K) -> None:
        """`key`'s request is over. The timer stays armed, for a later request or to find none running."""
        del self._running[key]

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @abstractmethod
    def _expire(self, key: K) -> None:
        """`key`'s deadline has come (the timer's callback, on the loop): end what it times."""

    def _arm(self, when: float) -> None:
        self._armed_for = when
        self._timer = self._loop.call_at(when, self._fired)

    def _fired(self) -> None:
        self._timer = None
        # The loop runs a timer once its time has come within the clock's resolution, maybe a hair before `when`.
        now = max(self._loop.time(), self._armed_for)
        running = self._running
        for key, when in running.items():  # oldest first; setting a value does not upset the iteration
            if when is _TIMED_OUT:
                continue  # expired, and leaving
            if when > now:
                self._arm(when)
                return
            running[key] = _TIMED_OUT
            self._expire(key)


class TotalTimeouts(Deadlines[asyncio.Task[object]]):
    """The deadlines of the requests under way (by task: a task makes one request at a time), oldest first, and
    the one timer for the oldest."""

    def timed_out(self, task: asyncio.Task[object], cancelling: int) -> bool:
        """Whether the `CancelledError` leaving `task`'s request is its timeout, to be raised as `TimeoutError`.
        `cancelling` is `task.cancelling()` at `enter`: as `asyncio.timeout` and aiohttp decide, a cancellation
        asked for by anyone else goes on."""
        if task not in self._running or self._running[task] is not _TIMED_OUT:
            return False
        return task.uncancel() <= cancelling

    def _expire(self, task: asyncio.Task[object]) -> None:
        task.cancel()
