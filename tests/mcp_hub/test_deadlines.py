"""`Deadline` on the loop's shared timer: a call's scope is cancelled when its time is up, as a scope with a deadline
cancels itself, while the deadlines (and other timed entries) of every call share one loop timer.

Every wait below is bounded by `anyio.fail_after`: a deadline that never fired fails the test instead of hanging it.
"""

from __future__ import annotations

import time

import anyio
import pytest

from mcp_hub.relay.deadlines import EXCEEDED, Deadline
from mcp_hub.timers import loop_timer

pytestmark = pytest.mark.anyio

LONG = 30.0
"""A deadline no test reaches."""


async def test_a_call_past_its_deadline_is_cancelled_and_knows_it() -> None:
    deadline = Deadline(0.05)
    with anyio.fail_after(5):
        with deadline as scope:
            await anyio.sleep_forever()
    assert deadline.expired and scope.cancelled_caught and scope.cancel_called


async def test_the_cancellation_reads_as_anyios_own_at_a_deadline() -> None:
    messages = []
    for scope in (anyio.CancelScope(deadline=anyio.current_time()), Deadline(0.0)):
        with anyio.fail_after(5), scope as entered:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class() as exc:
                messages.append(str(exc).replace(f"{id(entered):x}", "<scope>"))
                raise
    assert messages[0] == messages[1] and messages[0].endswith(f"reason: {EXCEEDED}")


async def test_calls_that_end_in_time_leave_one_timer_for_all() -> None:
    timers = []
    for _ in range(5):
        deadline = Deadline(LONG)
        with deadline:
            await anyio.sleep(0)
        assert not deadline.expired
        timers.append(loop_timer()._handle)
    assert timers[0] is not None and all(timer is timers[0] for timer in timers)  # the first call's, left armed


async def test_a_deadline_later_than_the_armed_timer_still_expires() -> None:
    with Deadline(0.02):  # ends at once, leaving the timer armed for its deadline
        pass
    later = Deadline(0.2)
    with anyio.fail_after(5):
        with later:
            await anyio.sleep_forever()
    assert later.expired


async def test_a_shorter_deadline_after_a_longer_one_expires_first_and_alone() -> None:
    long = Deadline(LONG)
    released = anyio.Event()

    async def waits_long() -> None:
        with long:
            await released.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waits_long)
        await anyio.sleep(0)
        short = Deadline(0.05)
        with anyio.fail_after(5):
            with short:
                await anyio.sleep_forever()
        released.set()
    assert short.expired and not long.expired


async def test_an_outside_cancellation_is_not_taken_for_the_deadline() -> None:
    deadline = Deadline(LONG)
    with anyio.CancelScope() as outer:
        with deadline:
            outer.cancel()
            await anyio.sleep_forever()
    assert outer.cancelled_caught and not deadline.expired


async def test_time_stands_still_while_paused_and_runs_on_after() -> None:
    deadline = Deadline(0.1)
    with anyio.fail_after(5):
        with deadline:
            with deadline.paused():
                await anyio.sleep(0.3)  # past the deadline, had it run
            assert not deadline.scope.cancel_called
            await anyio.sleep_forever()
    assert deadline.expired


async def test_a_deadline_whose_time_is_up_on_entry_cancels_at_once() -> None:
    deadline = Deadline(0.01)
    time.sleep(0.02)  # the loop's clock passes the deadline before the scope is entered
    with anyio.fail_after(5):
        with deadline:
            assert deadline.scope.cancel_called
            await anyio.sleep_forever()
    assert deadline.expired


async def test_a_shielded_scope_inside_holds_the_deadline_off() -> None:
    deadline = Deadline(0.02)
    finished = False
    with anyio.fail_after(5):
        with deadline:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.1)  # past the deadline
                finished = True
            await anyio.sleep_forever()
    assert finished and deadline.expired
