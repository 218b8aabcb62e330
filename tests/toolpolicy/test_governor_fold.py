"""Admission takes the requested model's reservation with the request's own: fewer round trips, the same answers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import REDIS_URL, StoreTarget, require_service
from tests.toolpolicy.limits_support import RedisServer, principal, running, settings, spend
from toolpolicy.errors import LimitExceeded
from toolpolicy.governor import Call, Usage
from toolpolicy.types import ModelTarget, ToolTarget

pytestmark = pytest.mark.anyio

MODEL = ModelTarget.parse("mock/model")
FREE = ModelTarget.parse("mock/free")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


def alpha(**key_fields: Any) -> dict[str, Any]:
    """Config overrides giving key `alpha` the given fields."""
    key = {"name": "alpha", "team": "support", "value": "isk-alpha", "models": ["*"], **key_fields}
    return {"virtual_keys": [key, {"name": "beta", "team": "support", "value": "isk-beta", "models": ["*"]}]}


def governed(store_url: str, redis: str | None) -> Any:
    """The benchmark's governed shape: budgets at three levels (one rolling), request and token rate limits."""
    return settings(
        store_url,
        redis=redis,
        customers=[{"name": "acme", "budgets": [{"max_usd": 1000, "period": "1M"}]}],
        teams=[
            {"name": "support", "customer": "acme", "budgets": [{"max_usd": 1000, "period": "1d", "rolling": True}]}
        ],
        mcp_servers={"docs": {"url": "http://127.0.0.1:9/mcp", "cost_per_call_usd": 0.01}},
        **alpha(
            budgets=[{"max_usd": 1000}],
            rate_limit={"requests": "1000/1m", "tokens": "1000000/1m"},
            mcp={"docs": ["*"]},
            mcp_rate_limit={"calls": "1000/1m", "per_server": {"docs": "1000/1m"}},
        ),
    )


class RoundTrips:
    """The commands clients send this Redis (not those its scripts run), watched with MONITOR."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.from_url(url)
        self.marker = aioredis.from_url(url)

    async def during(self, action: Callable[[], Awaitable[None]]) -> list[str]:
        marker = f"end-{uuid.uuid4().hex}"
        await self.marker.ping()  # connected before watching
        async with self.client.monitor() as monitor:
            await action()
            await self.marker.echo(marker)  # MONITOR reports in the order Redis ran them
            sent: list[str] = []
            while True:
                entry = await monitor.next_command()
                if marker in entry["command"]:
                    return sent
                if entry["client_type"] != "lua":
                    sent.append(entry["command"].split(" ", 1)[0].upper())


@pytest.mark.redis
async def test_a_governed_chat_request_costs_two_counter_round_trips(
    store_target: StoreTarget, private_redis: RedisServer
) -> None:
    config = governed(store_target.url, private_redis.url)
    watch = RoundTrips(private_redis.url)
    try:
        async with running(config, store_target.connect_args) as governance:
            who = await principal(governance, "alpha")
            await spend(governance, who)  # loads the scripts and seeds the buckets

            async def chat() -> None:
                for _ in range(5):
                    await spend(governance, who)  # admit (with the model's reservation), attempt, settle

            async def mcp() -> None:
                for _ in range(5):
                    call = Call(uuid.uuid4().hex, who, ToolTarget("docs", "t"), fixed_cost_usd=Decimal("0.01"))
                    admission = await governance.governor.admit(call)
                    await admission.settle(Usage())

            await mcp()  # seeds the MCP rate-limit buckets
            chat_commands, mcp_commands = await watch.during(chat), await watch.during(mcp)
    finally:
        await watch.client.aclose()
        await watch.marker.aclose()
    assert chat_commands == ["EVALSHA"] * 10
    assert mcp_commands == ["EVALSHA"] * 10


async def test_a_budget_denied_at_admission_skips_the_target_and_still_counts_the_request(
    store_target: StoreTarget, redis_url: str | None
) -> None:
    config = settings(
        store_target.url,
        redis=redis_url,
        teams=[{"name": "support", "customer": "acme", "budgets": [{"max_usd": 0.01, "period": "1M"}]}],
        **alpha(rate_limit={"requests": "3/1d"}),
    )
    async with running(config, store_target.connect_args) as governance:
        who = await principal(governance, "alpha")
        await spend(governance, who)  # $0.01 of $0.01
        for _ in range(2):
            admission = await governance.governor.admit(Call(uuid.uuid4().hex, who, MODEL, max_output_tokens=10))
            with pytest.raises(LimitExceeded, match=r"^budget team/support 1M: \$0.01 spent of \$0.01$"):
                await admission.attempt(MODEL)
            await admission.attempt(FREE)  # the router goes on to the next target
            await admission.settle(Usage())
        with pytest.raises(LimitExceeded, match="^rate limit key/alpha requests 3/1d: 3 of 3 used$"):
            await governance.governor.admit(Call(uuid.uuid4().hex, who, MODEL, max_output_tokens=10))


async def test_holds_for_a_requested_model_the_router_skips_are_given_back(
    store_target: StoreTarget, redis_url: str | None
) -> None:
    config = settings(store_target.url, redis=redis_url, **alpha(budgets=[{"max_usd": 0.02}]))
    async with running(config, store_target.connect_args) as governance:
        who = await principal(governance, "alpha")
        first, second = [
            await governance.governor.admit(Call(uuid.uuid4().hex, who, MODEL, max_output_tokens=10)) for _ in range(2)
        ]  # each holds the worst case, $0.01: the budget is fully held
        third = await governance.governor.admit(Call(uuid.uuid4().hex, who, MODEL, max_output_tokens=10))
        with pytest.raises(LimitExceeded, match=r"^budget key/alpha lifetime: \$0.02 spent of \$0.02$"):
            await third.attempt(MODEL)
        await third.release()
        await first.attempt(FREE)  # its circuit open, say: the router skips mock/model
        fourth = await governance.governor.admit(Call(uuid.uuid4().hex, who, MODEL, max_output_tokens=10))
        await fourth.attempt(MODEL)  # first's hold was given back
        for admission in (first, second, fourth):
            await admission.release()


async def test_a_provider_request_limit_counts_only_targets_attempted(
    store_target: StoreTarget, redis_url: str | None
) -> None:
    config = settings(store_target.url, redis=redis_url, **alpha(provider_rate_limits={"mock": {"requests": "1/1d"}}))
    async with running(config, store_target.connect_args) as governance:
        who = await principal(governance, "alpha")
        skipped = await governance.governor.admit(Call(uuid.uuid4().hex, who, MODEL, max_output_tokens=10))
        await skipped.attempt(ModelTarget.parse("other/model"))  # mock/model was never tried
        await skipped.release()
        await spend(governance, who)  # the one request mock allows
        with pytest.raises(LimitExceeded, match="^rate limit key/alpha mock requests 1/1d: 1 of 1 used$"):
            await spend(governance, who)
