"""Rate limits across restarts: a private Redis is killed and restarted empty, and the windows still hold."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StoreTarget
from tests.toolpolicy.limits_support import Clock, RedisServer, principal, running, settings, spend
from toolpolicy.errors import LimitExceeded
from toolpolicy.governor import Call, Usage
from toolpolicy.runtime import Governance
from toolpolicy.types import ModelTarget, Principal, ToolTarget

pytestmark = pytest.mark.anyio


def kill_and_restart(server: RedisServer) -> None:
    server.kill()
    server.start()


def with_limits(**key_fields: Any) -> dict[str, Any]:
    key = {"name": "alpha", "team": "support", "value": "isk-alpha", "models": ["*"], **key_fields}
    return {"virtual_keys": [key]}


async def tool_call(governance: Governance, who: Principal, server: str) -> None:
    admission = await governance.governor.admit(Call(uuid.uuid4().hex, who, ToolTarget(server, "t")))
    await admission.settle(Usage())


async def test_a_request_window_used_up_before_a_redis_restart_stays_used_up(
    store_target: StoreTarget, private_redis: RedisServer
) -> None:
    config = settings(store_target.url, redis=private_redis.url, **with_limits(rate_limit={"requests": "3/1m"}))
    clock = Clock(Clock().now + timedelta(seconds=10))
    async with running(config, store_target.connect_args, clock) as governance:
        who = await principal(governance, "alpha")
        for _ in range(3):
            await spend(governance, who, target="mock/free")
        kill_and_restart(private_redis)
        clock.now += timedelta(seconds=20)  # still the same minute
        with pytest.raises(LimitExceeded, match=r"^rate limit key/alpha requests 3/1m: 3 of 3 used$"):
            await spend(governance, who, target="mock/free")
        clock.now += timedelta(minutes=1)  # the next window is a new one: not denied for ever
        await spend(governance, who, target="mock/free")


async def test_a_token_window_survives_a_redis_restart_with_the_holds_in_flight(
    store_target: StoreTarget, private_redis: RedisServer
) -> None:
    # Each call holds 10 tokens (max_tokens 10) and settles at its reported usage.
    config = settings(store_target.url, redis=private_redis.url, **with_limits(rate_limit={"tokens": "40/1m"}))
    clock = Clock()
    async with running(config, store_target.connect_args, clock) as governance:
        who = await principal(governance, "alpha")
        for _ in range(3):
            await spend(governance, who, target="mock/free")  # 30 tokens used
        in_flight = await governance.governor.admit(
            Call(uuid.uuid4().hex, who, ModelTarget.parse("mock/free"), input_tokens=0, max_output_tokens=10)
        )
        kill_and_restart(private_redis)
        with pytest.raises(LimitExceeded, match=r"^rate limit key/alpha tokens 40/1m: 40 of 40 used$"):
            await spend(governance, who, target="mock/free")
        await in_flight.settle(Usage(tokens_out=4))


async def test_provider_and_tool_call_windows_survive_a_redis_restart(
    store_target: StoreTarget, private_redis: RedisServer
) -> None:
    config = settings(
        store_target.url,
        redis=private_redis.url,
        mcp_servers={"docs": {"url": "http://127.0.0.1:9/mcp"}, "time": {"command": "x"}},
        **with_limits(
            mcp={"docs": ["*"], "time": ["*"]},
            provider_rate_limits={"mock": {"requests": "2/1h", "tokens": "25/1h"}},
            mcp_rate_limit={"calls": "3/1m", "per_server": {"docs": "1/1m"}},
        ),
    )
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")
        await spend(governance, who, target="mock/free")
        await spend(governance, who, target="mock/free")
        await tool_call(governance, who, "docs")
        await tool_call(governance, who, "time")
        kill_and_restart(private_redis)
        with pytest.raises(LimitExceeded, match=r"^rate limit key/alpha mock requests 2/1h: 2 of 2 used$"):
            await spend(governance, who, target="mock/free")
        with pytest.raises(LimitExceeded, match=r"^rate limit key/alpha docs calls 1/1m: 1 of 1 used$"):
            await tool_call(governance, who, "docs")
        await tool_call(governance, who, "time")
        with pytest.raises(LimitExceeded, match=r"^rate limit key/alpha calls 3/1m: 3 of 3 used$"):
            await tool_call(governance, who, "time")


async def test_in_process_rate_windows_survive_a_gateway_restart(store_target: StoreTarget) -> None:
    config = settings(store_target.url, **with_limits(rate_limit={"requests": "2/1h", "tokens": "100/1h"}))
    clock = Clock()
    async with running(config, store_target.connect_args, clock) as governance:
        who = await principal(governance, "alpha")
        await spend(governance, who, target="mock/free")
        await spend(governance, who, target="mock/free")
    clock.now += timedelta(minutes=5)
    async with running(config, store_target.connect_args, clock) as governance:
        who = await principal(governance, "alpha")
        with pytest.raises(LimitExceeded, match=r"^rate limit key/alpha requests 2/1h: 2 of 2 used$"):
            await spend(governance, who, target="mock/free")


@pytest.mark.parametrize("counters", ["memory", "redis"])
async def test_new_windows_never_read_the_journal(
    store_target: StoreTarget, tmp_path: Path, counters: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeding is for windows older than the counters: the steady state stays off the store."""
    redis = RedisServer(tmp_path) if counters == "redis" else None
    if redis is not None:
        redis.start()
    config = settings(
        store_target.url, redis=redis.url if redis else None, **with_limits(rate_limit={"requests": "5/1m"})
    )
    clock = Clock()
    try:
        async with running(config, store_target.connect_args, clock) as governance:
            reads: list[int] = []
            totals = governance.rate_journal.totals

            async def counted(buckets: Any) -> dict[str, int]:
                reads.append(len(buckets))
                return await totals(buckets)

            monkeypatch.setattr(governance.rate_journal, "totals", counted)
            who = await principal(governance, "alpha")
            await spend(governance, who, target="mock/free")  # the counters are new: the open window is seeded
            assert reads == [1]
            for _ in range(5):
                clock.now += timedelta(minutes=1)
                await spend(governance, who, target="mock/free")
                await spend(governance, who, target="mock/free")
            assert reads == [1]
    finally:
        if redis is not None:
            redis.stop()
