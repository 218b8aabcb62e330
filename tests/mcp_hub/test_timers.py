"""`mcp_hub.timers`: one loop timer runs every entry when its time comes, in time order, and never one taken out.

Waits are bounded by `anyio.fail_after`; no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from mcp_hub.timers import SharedTimer, loop_timer

pytestmark = pytest.mark.anyio


class Later:
    """An entry due `delay` seconds from now that calls `callback`; `cancel()` takes it out."""

    def __init__(self, delay: float, callback: Callable[[], object]) -> None:
        self._timer: SharedTimer = loop_timer()
        self.at = self._timer.loop.time() + delay
        self._callback = callback
        self._timer.add(self)

    def due(self) -> None:
        self._callback()

    def cancel(self) -> None:
        self._timer.discard(self)


async def test_entries_run_in_the_order_they_fall_due_and_a_cancelled_one_never() -> None:
    ran: list[str] = []
    done = anyio.Event()
    Later(0.15, lambda: (ran.append("late"), done.set()))
    Later(0.05, lambda: ran.append("soon"))  # sooner than the armed time: armed again for it
    dropped = Later(0.1, lambda: ran.append("dropped"))
    Later(0.1, lambda: ran.append("middle"))
    dropped.cancel()
    with anyio.fail_after(5):
        await done.wait()
    assert ran == ["soon", "middle", "late"]


async def test_an_entry_taken_out_leaves_the_timer_armed_for_the_next_one() -> None:
    ran = anyio.Event()
    first = Later(0.02, lambda: None)
    first.cancel()  # the timer stays armed for its time, and then serves the next
    Later(0.1, ran.set)
    with anyio.fail_after(5):
        await ran.wait()


async def test_a_failing_entry_is_reported_as_the_loop_reports_a_callback_and_the_others_run() -> None:
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    ran = anyio.Event()

    def fails() -> None:
        raise RuntimeError("boom")

    try:
        Later(0.01, fails)
        Later(0.01, ran.set)
        with anyio.fail_after(5):
            await ran.wait()
    finally:
        loop.set_exception_handler(None)
    assert [type(context["exception"]) for context in reported] == [RuntimeError]


async def test_each_loop_has_its_own_timer() -> None:
    mine = loop_timer()
    assert loop_timer() is mine and mine.loop is asyncio.get_running_loop()

    async def other() -> object:
        return loop_timer()

    theirs = await anyio.to_thread.run_sync(lambda: asyncio.run(other()))
    assert theirs is not mine and loop_timer() is mine
