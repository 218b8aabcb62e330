"""One loop timer for the timed entries of every request on a loop (the upstream calls' deadlines).

Each upstream request used to run under a scope with a deadline, which arms a loop timer of its own and cancels it
when the request ends, nearly always long before it is due. `SharedTimer` keeps one timer per loop instead, armed for
the earliest entry in it and left armed when that entry is taken out early: a request whose entry falls due later
than the armed time arms nothing. When the timer fires, every entry whose time has come is taken out and run
(`due()`, as a loop callback would run it), and the timer is armed again for the earliest one left, if any. An entry
is run once the loop's clock has reached its time, as `loop.call_at` runs a callback: never sooner.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Protocol


class Timed(Protocol):
    """An entry of the shared timer."""

    @property
    def at(self) -> float:
        """When it is due, on the loop's clock."""

    def due(self) -> None:
        """Called once, in a loop callback, when the loop's clock has reached `at` (unless taken out before)."""


class SharedTimer:
    """The one timer of a loop's timed entries (see the module doc); `loop_timer()` gives the running loop's."""

    __slots__ = ("__weakref__", "_armed_at", "_handle", "_live", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._live: dict[Timed, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def add(self, entry: Timed) -> None:
        """Run `entry.due()` once the loop's clock reaches `entry.at`, unless it is taken out (`discard`) before."""
        self._live[entry] = None
        at = entry.at
        if at < self._armed_at:
            if self._handle is not None:
                self._handle.cancel()
            self._arm(at)

    def discard(self, entry: Timed) -> None:
        """Take `entry` out (if it is in); the timer stays armed as it is."""
        self._live.pop(entry, None)

    def _arm(self, at: float) -> None:
        self._armed_at = at
        self._handle = self.loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle, self._armed_at = None, math.inf
        now = self.loop.time()
        live = self._live
        for entry in [entry for entry in live if entry.at <= now]:
            del live[entry]
            try:
                entry.due()
            except Exception as exc:  # as the loop reports a failing callback, and goes on with the others
                self.loop.call_exception_handler({"message": "a timed callback failed", "exception": exc})
        if live:
            self._arm(min(entry.at for entry in live))


_timers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedTimer] = weakref.WeakKeyDictionary()
_last: tuple[asyncio.AbstractEventLoop, SharedTimer] | None = None
"""The timer asked for last, with its loop: the hub runs one loop, and finds it here without a weak-dict lookup."""


def loop_timer() -> SharedTimer:
    """The running loop's shared timer."""
    global _last
    loop = asyncio.get_running_loop()
    last = _last
    if last is not None and last[0] is loop:
        return last[1]
    timer = _timers.get(loop)
    if timer is None:
        timer = _timers[loop] = SharedTimer(loop)
    _last = (loop, timer)
    return timer
