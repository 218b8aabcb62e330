"""The counter-cost bench runs the governed request's reservations and settlements, and reads what Redis did."""

from __future__ import annotations

import pytest

from bench.counter_cost import NOW, limits, measure
from tests.toolpolicy.limits_support import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


def test_the_limits_are_the_governed_benchmarks_five() -> None:
    planned = limits("k")
    assert [limit.commit for limit in planned] == [True, False, False, False, False]
    assert all(limit.seeded for limit in planned) and len(planned[3].used_keys) == 61
    assert planned[0].window_start == NOW - NOW % 60


async def test_every_request_runs_the_scripts_and_their_commands_are_counted(private_redis: RedisServer) -> None:
    result = await measure(private_redis.url, 20)
    assert result["calls"] == 21  # a reservation a request (settlements ride along), the last settlement alone
    assert result["us_per_request"] > 0
    assert result["commands"]["zadd"] == 4 and result["commands"]["zrem"] == 4  # four limits held, then settled
