"""Admission takes the requested model's reservation with the request's own: fewer round trips, the same answers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import StoreTarget
from tests.toolpolicy.limits_support import RedisServer, principal, running, settings, spend
from toolpolicy.counters.redis import RedisCounterStore
from toolpolicy.counters.redis_scripts import RESERVE_SCRIPT, SEED_SCRIPT, SETTLE_SCRIPT
from toolpolicy.errors import LimitExceeded
from toolpolicy.governor import Call, Usage
from toolpolicy.runtime import Governance
from toolpolicy.types import ModelTarget, ToolTarget

pytestmark = pytest.mark.anyio

MODEL = ModelTarget.parse("mock/model")
FREE = ModelTarget.parse("mock/free")


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
    """The commands clients send this Redis (not those its scripts run), watched with MONITOR: `EVALSHA` calls are
    named by their script (`EVALSHA reserve`, `EVALSHA settle`)."""

    SCRIPTS = {RESERVE_SCRIPT.sha: "reserve", SETTLE_SCRIPT.sha: "settle", SEED_SCRIPT.sha: "seed"}

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
                    name, *args = entry["command"].split(" ", 2)
                    if name.upper() == "EVALSHA":
                        name = f"EVALSHA {self.SCRIPTS.get(args[0], args[0])}"
                    sent.append(name.upper() if " " not in name else name)

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.marker.aclose()


async def no_holds_left(url: str) -> dict[str, int]:
    """Every hold total in this Redis that is not 0."""
    client = aioredis.from_url(url)
    try:
        totals = {}
        async for key in client.scan_iter("isthmus:h:*"):
            if not key.endswith((b":q", b":z")):
                totals[key.decode()] = int(await client.hget(key, "__total") or 0)
        return {key: total for key, total in totals.items() if total}
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_governed_request_costs_one_round_trip_and_settlements_ride_along(
    store_target: StoreTarget, private_redis: RedisServer
) -> None:
    config = governed(store_target.url, private_redis.url)
    watch = RoundTrips(private_redis.url)
    requests = 5
    try:
        async with running(config, store_target.connect_args) as governance:
            who = await principal(governance, "alpha")
            await spend(governance, who)  # loads the scripts and seeds the buckets

            async def chat() -> None:
                for _ in range(requests):
                    # admit (with the model's reservation), attempt, settle: half the $0.01 held
                    await spend(governance, who, provider_cost=5)
                await governance.counters.flush()

            async def mcp() -> None:
                for _ in range(requests):
                    call = Call(uuid.uuid4().hex, who, ToolTarget("docs", "t"), fixed_cost_usd=Decimal("0.01"))
                    admission = await governance.governor.admit(call)
                    await admission.settle(Usage())
                await governance.counters.flush()

            await mcp()  # seeds the MCP rate-limit buckets
            chat_commands, mcp_commands = await watch.during(chat), await watch.during(mcp)
            assert await no_holds_left(private_redis.url) == {}
            used = await watch.client.hget(f"isthmus:u:b:key:{who.key_id}:-:life", "used")
    finally:
        await watch.aclose()
    # Each settlement rides with the next request's reservation; the last is sent by the flush.
    assert chat_commands == ["EVALSHA reserve"] * requests + ["EVALSHA settle"]
    assert mcp_commands == ["EVALSHA reserve"] * requests + ["EVALSHA settle"]
    # Exact after the flush: $0.01 + 5 × $0.005 chat, 1 + 5 + 5 tool calls at $0.01, in nano-USD.
    assert int(used) == 10_000_000 + requests * 5_000_000 + (2 * requests) * 10_000_000


@pytest.mark.redis
async def test_a_call_with_only_counted_limits_has_nothing_to_settle(
    store_target: StoreTarget, private_redis: RedisServer
) -> None:
    config = settings(
        store_target.url,
        redis=private_redis.url,
        mcp_servers={"docs": {"url": "http://127.0.0.1:9/mcp"}},  # no cost per call: no budget applies
        **alpha(mcp={"docs": ["*"]}, mcp_rate_limit={"calls": "1000/1m", "per_server": {"docs": "1000/1m"}}),
    )
    watch = RoundTrips(private_redis.url)
    try:
        async with running(config, store_target.connect_args) as governance:
            who = await principal(governance, "alpha")

            async def calls() -> None:
                for _ in range(3):
                    admission = await governance.governor.admit(Call(uuid.uuid4().hex, who, ToolTarget("docs", "t")))
                    await admission.settle(Usage())
                await governance.counters.flush()

            await calls()  # loads the script
            sent = await watch.during(calls)
    finally:
        await watch.aclose()
    assert sent == ["EVALSHA reserve"] * 3  # the tool calls are counted at admission; settling sends nothing


@pytest.mark.redis
async def test_settlements_no_reservation_carries_are_sent_in_one_call_and_none_is_lost_on_close(
    store_target: StoreTarget, private_redis: RedisServer
) -> None:
    config = governed(store_target.url, private_redis.url)
    watch = RoundTrips(private_redis.url)
    requests = 8
    # No tick during the test: only the close sends what is queued.
    governance = Governance(
        config,
        store_connect_args=store_target.connect_args,
        counters=RedisCounterStore(private_redis.url, settle_interval=3600),
    )
    await governance.start()
    try:
        who = await principal(governance, "alpha")
        await spend(governance, who)
        await governance.counters.flush()  # loads the settle script

        async def concurrent() -> None:
            admissions = [
                await governance.governor.admit(Call(uuid.uuid4().hex, who, MODEL, max_output_tokens=10))
                for _ in range(requests)
            ]
            for admission in admissions:
                await admission.attempt(MODEL)
            for admission in admissions:  # all finish before any other request is admitted
                await admission.settle(Usage(tokens_out=5))

        during = await watch.during(concurrent)
        held = await no_holds_left(private_redis.url)
        closing = await watch.during(governance.stop)
        assert await no_holds_left(private_redis.url) == {}
        used = await watch.client.hget(f"isthmus:u:b:key:{who.key_id}:-:life", "used")
    finally:
        await governance.stop()
        await watch.aclose()
    assert during == ["EVALSHA reserve"] * requests
    assert sum(held.values()) > 0  # queued: the worst case is still held
    assert closing == ["EVALSHA settle"]
    assert int(used) == 10_000_000 + requests * 5_000_000


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
