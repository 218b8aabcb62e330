"""`mcp_hub.scopes` makes the scopes and reads the clock `anyio` would, on asyncio."""

from __future__ import annotations

import anyio
import pytest

from mcp_hub.scopes import cancel_scope, current_time

pytestmark = pytest.mark.anyio


async def test_a_scope_is_anyios_own_with_its_deadline_and_shield() -> None:
    scope = cancel_scope(deadline=12.5, shield=True)
    assert type(scope) is type(anyio.CancelScope())
    assert scope.deadline == 12.5 and scope.shield
    assert cancel_scope().deadline == anyio.CancelScope().deadline and not cancel_scope().shield


async def test_a_scope_starts_in_the_state_anyios_own_starts_in() -> None:
    made, anyios = cancel_scope(deadline=7.0, shield=True), anyio.CancelScope(deadline=7.0, shield=True)
    for name in type(anyios).__slots__:
        assert getattr(made, name) == getattr(anyios, name), name


async def test_a_scope_cancels_at_its_deadline_and_the_clock_is_anyios() -> None:
    before = anyio.current_time()
    assert before <= current_time() <= anyio.current_time()
    with cancel_scope(deadline=current_time() + 0.01) as scope:
        await anyio.sleep_forever()
    assert scope.cancelled_caught


async def test_a_shielded_scope_keeps_out_an_outer_cancellation() -> None:
    with anyio.CancelScope() as outer:
        outer.cancel()
        with cancel_scope(shield=True):
            await anyio.sleep(0)  # would raise were the shield not there
            reached = True
    assert reached
