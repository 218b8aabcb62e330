"""Budgets and rate limits that hold exactly: on one process, across replicas sharing Redis, across restarts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL, StoreTarget, require_service
from tests.toolpolicy.limits_support import CENT, Clock, RedisServer, principal, running, settings, spend
from toolpolicy.errors import LimitExceeded, PermissionDenied, ServiceUnavailable
from toolpolicy.governor import Call, Usage
from toolpolicy.plan import Planned
from toolpolicy.store.ledger import SpendScope
from toolpolicy.types import ModelTarget, ToolTarget

pytestmark = pytest.mark.anyio


def with_limits(**key_fields: Any) -> dict[str, Any]:
    """Config overrides giving key `alpha` the given fields."""
    key = {"name": "alpha", "team": "support", "value": "isk-alpha", "models": ["*"], **key_fields}
    return {
        "virtual_keys": [
            key,
            {"name": "beta", "team": "support", "value": "isk-beta", "models": ["*"]},
            {"name": "gamma", "team": "sales", "value": "isk-gamma", "models": ["*"]},
        ]
    }


async def test_exactly_the_request_limit_passes_under_concurrency(
    store_target: StoreTarget, redis_url: str | None
) -> None:
    config = settings(store_target.url, redis=redis_url, **with_limits(rate_limit={"requests": "50/1d"}))
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")

        async def one() -> bool:
            try:
                admission = await governance.governor.admit(Call(uuid.uuid4().hex, who, ModelTarget.parse("mock/free")))
            except LimitExceeded:
                return False
            await admission.release()
            return True

        results = await asyncio.gather(*(one() for _ in range(200)))
    assert sum(results) == 50


async def test_a_budget_holds_exactly_when_requests_race(store_target: StoreTarget, redis_url: str | None) -> None:
    config = settings(store_target.url, redis=redis_url, **with_limits(budgets=[{"max_usd": 0.5}]))
    forwarded = 0
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")

        async def one() -> bool:
            nonlocal forwarded
            admission = await governance.governor.admit(Call(uuid.uuid4().hex, who, ModelTarget.parse("mock/model")))
            try:
                await admission.attempt(ModelTarget.parse("mock/model"))
            except LimitExceeded:
                await admission.release()
                return False
            forwarded += 1  # what the provider would see
            await asyncio.sleep(0.001)
            await admission.settle(Usage(tokens_out=10))
            return True

        results = await asyncio.gather(*(one() for _ in range(100)))
        await governance.spend.flush()
        total = await governance.ledger.total(_scope(who.key_id), _epoch())
    assert sum(results) == forwarded == 50
    assert total == Decimal("0.50")


def _scope(key_id: str) -> SpendScope:
    return SpendScope(key_id=key_id)


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)


async def test_settlement_trues_up_to_the_actual_cost(store_target: StoreTarget) -> None:
    config = settings(store_target.url, **with_limits(budgets=[{"max_usd": 0.05, "period": "1d"}]))
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")
        for _ in range(9):  # each holds $0.01 but costs $0.005
            await spend(governance, who, provider_cost=5)
        with pytest.raises(LimitExceeded) as denied:  # $0.045 spent: the next worst case no longer fits
            await spend(governance, who)
    assert str(denied.value) == "budget key/alpha 1d: $0.045 spent of $0.05"


async def test_a_team_budget_spent_by_one_key_blocks_its_other_keys(store_target: StoreTarget) -> None:
    overrides = {
        "teams": [
            {"name": "support", "customer": "acme", "budgets": [{"max_usd": 0.02, "period": "1M"}]},
            {"name": "sales", "customer": "acme"},
        ]
    }
    async with running(settings(store_target.url, **overrides), store_target.connect_args, Clock()) as governance:
        alpha, beta, gamma = [await principal(governance, name) for name in ("alpha", "beta", "gamma")]
        await spend(governance, alpha)
        await spend(governance, alpha)
        with pytest.raises(LimitExceeded) as denied:
            await spend(governance, beta)
        await spend(governance, gamma)  # another team is unaffected
    assert str(denied.value) == "budget team/support 1M: $0.02 spent of $0.02"
    assert denied.value.status == 429 and denied.value.retry_after is not None


async def test_a_customer_budget_blocks_all_its_teams(store_target: StoreTarget) -> None:
    overrides = {"customers": [{"name": "acme", "budgets": [{"max_usd": 0.01}]}]}
    async with running(settings(store_target.url, **overrides), store_target.connect_args, Clock()) as governance:
        await spend(governance, await principal(governance, "alpha"))
        with pytest.raises(LimitExceeded, match=r"^budget customer/acme lifetime: \$0.01 spent of \$0.01$"):
            await spend(governance, await principal(governance, "gamma"))


async def test_calendar_periods_roll_over_on_utc_boundaries(store_target: StoreTarget) -> None:
    clock = Clock()
    config = settings(store_target.url, **with_limits(budgets=[{"max_usd": 0.01, "period": "1d"}]))
    async with running(config, store_target.connect_args, clock) as governance:
        who = await principal(governance, "alpha")
        await spend(governance, who)
        with pytest.raises(LimitExceeded) as denied:
            await spend(governance, who)
        assert denied.value.retry_after == pytest.approx(12 * 3600)
        clock.now += timedelta(hours=11, minutes=59)
        with pytest.raises(LimitExceeded):
            await spend(governance, who)
        clock.now += timedelta(minutes=2)  # past midnight UTC
        await spend(governance, who)


async def test_rolling_periods_free_spend_as_it_ages(store_target: StoreTarget) -> None:
    clock = Clock()
    config = settings(store_target.url, **with_limits(budgets=[{"max_usd": 0.02, "period": "1h", "rolling": True}]))
    async with running(config, store_target.connect_args, clock) as governance:
        who = await principal(governance, "alpha")
        await spend(governance, who)
        clock.now += timedelta(minutes=30)
        await spend(governance, who)
        with pytest.raises(LimitExceeded):
            await spend(governance, who)
        clock.now += timedelta(minutes=32)  # the first spend has left the hour, the second has not
        await spend(governance, who)
        with pytest.raises(LimitExceeded):
            await spend(governance, who)


async def test_a_restart_neither_resets_nor_double_counts_a_period(store_target: StoreTarget) -> None:
    config = settings(store_target.url, **with_limits(budgets=[{"max_usd": 0.05, "period": "1w"}]))
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")
        for _ in range(3):
            await spend(governance, who)
    async with running(config, store_target.connect_args, Clock()) as governance:  # fresh in-process counters
        who = await principal(governance, "alpha")
        await spend(governance, who)
        await spend(governance, who)
        with pytest.raises(LimitExceeded, match=r"\$0.05 spent of \$0.05"):
            await spend(governance, who)


async def test_provider_budgets_and_rate_limits_apply_to_that_provider_only(store_target: StoreTarget) -> None:
    pricing = {"mock/model": {"input": 0, "output": 1000, "max_output": 10}, "other/model": {"input": 0, "output": 0}}
    config = settings(
        store_target.url,
        pricing=pricing,
        **with_limits(
            provider_budgets={"mock": [{"max_usd": 0.01, "period": "1d"}]},
            provider_rate_limits={"other": {"requests": "2/1d"}},
        ),
    )
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")
        await spend(governance, who)
        with pytest.raises(LimitExceeded, match=r"^budget key/alpha mock 1d"):
            await spend(governance, who)
        await spend(governance, who, target="other/model")
        await spend(governance, who, target="other/model")
        with pytest.raises(LimitExceeded, match=r"^rate limit key/alpha other requests 2/1d: 2 of 2 used$"):
            await spend(governance, who, target="other/model")


async def test_rate_limit_headers_follow_openai(store_target: StoreTarget) -> None:
    clock = Clock()
    config = settings(store_target.url, **with_limits(rate_limit={"requests": "3/1m", "tokens": "1000/1h"}))
    async with running(config, store_target.connect_args, clock) as governance:
        admission = await spend(governance, await principal(governance, "alpha"))
    assert admission.headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "990",
        "x-ratelimit-reset-tokens": "1h0m0s",
    }
    # The raw form a JSON answer sends: the same headers, bytes and order.
    assert admission.raw_headers() == [(name.encode(), value.encode()) for name, value in admission.headers.items()]


async def test_token_limits_hold_the_worst_case_and_settle_to_actual(store_target: StoreTarget) -> None:
    config = settings(store_target.url, **with_limits(rate_limit={"tokens": "30/1d"}))
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")
        first = await governance.governor.admit(
            Call("r1", who, ModelTarget.parse("mock/free"), input_tokens=5, max_output_tokens=10)
        )
        second = await governance.governor.admit(
            Call("r2", who, ModelTarget.parse("mock/free"), input_tokens=5, max_output_tokens=10)
        )
        with pytest.raises(LimitExceeded, match="^rate limit key/alpha tokens 30/1d: 30 of 30 used$"):
            await governance.governor.admit(
                Call("r3", who, ModelTarget.parse("mock/free"), input_tokens=5, max_output_tokens=10)
            )
        await first.settle(Usage(tokens_in=5, tokens_out=1))
        await second.release()
        third = await governance.governor.admit(
            Call("r4", who, ModelTarget.parse("mock/free"), input_tokens=5, max_output_tokens=10)
        )
        assert third.headers["x-ratelimit-remaining-tokens"] == str(30 - 6 - 15)


async def test_mcp_calls_are_limited_per_key_and_per_server_and_charged(store_target: StoreTarget) -> None:
    config = settings(
        store_target.url,
        mcp_servers={"docs": {"url": "http://127.0.0.1:9/mcp", "cost_per_call_usd": 0.01}, "time": {"command": "x"}},
        **with_limits(
            mcp={"docs": ["*"], "time": ["*"]},
            mcp_rate_limit={"calls": "3/1d", "per_server": {"docs": "2/1d"}},
            budgets=[{"max_usd": 0.5}],
        ),
    )
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")

        async def call(server: str) -> None:
            cost = Decimal("0.01") if server == "docs" else None
            admission = await governance.governor.admit(
                Call(uuid.uuid4().hex, who, ToolTarget(server, "t"), fixed_cost_usd=cost)
            )
            await admission.settle(Usage())

        await call("docs")
        await call("docs")
        with pytest.raises(LimitExceeded, match="^rate limit key/alpha docs calls 2/1d: 2 of 2 used$"):
            await call("docs")
        await call("time")
        with pytest.raises(LimitExceeded, match="^rate limit key/alpha calls 3/1d"):
            await call("time")
        await governance.spend.flush()
        assert await governance.ledger.total(_scope(who.key_id), _epoch()) == 2 * CENT


async def test_mcp_rate_limits_are_planned_once_per_key_server_and_window(store_target: StoreTarget) -> None:
    config = settings(
        store_target.url,
        mcp_servers={"docs": {"url": "http://127.0.0.1:9/mcp"}, "time": {"command": "x"}},
        **with_limits(
            mcp={"docs": ["*"], "time": ["*"]}, mcp_rate_limit={"calls": "5/1m", "per_server": {"docs": "2/1m"}}
        ),
    )
    clock = Clock()
    async with running(config, store_target.connect_args, clock) as governance:
        who = await principal(governance, "alpha")

        async def limits(server: str) -> Sequence[Planned]:
            admission = await governance.governor.admit(Call(uuid.uuid4().hex, who, ToolTarget(server, "t")))
            held, taking = admission._held["request"]
            assert [limit.amount for limit in taking] == [1] * len(held)
            await admission.settle(Usage())
            return held

        first, again, other = await limits("docs"), await limits("docs"), await limits("time")
        labels = ["rate limit key/alpha calls 5/1m", "rate limit key/alpha docs calls 2/1m"]
        assert [item.label for item in first] == labels
        assert all(a.limit is b.limit for a, b in zip(first, again, strict=True))  # not rebuilt for the second call
        assert [item.label for item in other] == labels[:1] and other[0].limit == first[0].limit
        with pytest.raises(LimitExceeded, match="^rate limit key/alpha docs calls 2/1m: 2 of 2 used$"):
            await limits("docs")
        clock.now += timedelta(minutes=1)  # a new window: planned again, and counted from 0
        moved = await limits("docs")
        assert [item.label for item in moved] == labels
        assert all(a.limit.add_key != b.limit.add_key for a, b in zip(first, moved, strict=True))


@pytest.mark.parametrize(("policy", "allowed"), [("allow", True), ("deny", False)])
async def test_unpriced_models_follow_the_policy(store_target: StoreTarget, policy: str, allowed: bool) -> None:
    config = settings(store_target.url, unpriced=policy, **with_limits(budgets=[{"max_usd": 1}]))
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")
        if allowed:
            admission = await spend(governance, who, target="mock/unknown-model")
            assert admission.cost_usd == 0 and governance.governor.unpriced_calls == 1
        else:
            with pytest.raises(PermissionDenied, match="no price"):
                await spend(governance, who, target="mock/unknown-model")


async def test_a_key_without_limits_reserves_nothing_and_is_still_charged(store_target: StoreTarget) -> None:
    # `unpriced: deny` refuses a model without a price only where budgets apply: none do for this key.
    async with running(settings(store_target.url, unpriced="deny"), store_target.connect_args) as governance:
        who = await principal(governance, "alpha")
        priced = await spend(governance, who)
        assert priced.ungoverned and priced.headers == {} and priced.cost_usd == CENT
        unpriced = await spend(governance, who, target="mock/unknown-model")
        assert unpriced.cost_usd == 0 and governance.governor.unpriced_calls == 1
        await governance.spend.flush()
        assert await governance.ledger.total(_scope(who.key_id), _epoch()) == CENT
    budgeted = {"name": "support", "customer": "acme", "budgets": [{"max_usd": 1}]}
    teams = [budgeted, {"name": "sales", "customer": "acme"}]
    limited = settings(store_target.url, teams=teams)
    async with running(limited, store_target.connect_args, Clock()) as governance:
        admission = await spend(governance, await principal(governance, "alpha"))
        assert not admission.ungoverned and admission.cost_usd == CENT


async def test_a_denied_model_consumes_no_limit(store_target: StoreTarget) -> None:
    config = settings(store_target.url, **with_limits(models=["mock/*"], rate_limit={"requests": "1/1d"}))
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")
        with pytest.raises(PermissionDenied):
            await governance.governor.admit(Call("r", who, ModelTarget.parse("other/model")))
        await spend(governance, who, target="mock/free")


async def test_a_redis_restart_keeps_budgets_and_denies_while_down(
    store_target: StoreTarget, private_redis: RedisServer
) -> None:
    config = settings(
        store_target.url, redis=private_redis.url, **with_limits(budgets=[{"max_usd": 0.05, "period": "1d"}])
    )
    # A fixed clock: on the wall clock the day may end mid-test (`make test-dates` starts at 23:59), and a new day's
    # budget rightly starts empty.
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")
        for _ in range(3):
            await spend(governance, who)
        private_redis.stop()
        with pytest.raises(ServiceUnavailable, match="unreachable"):
            await spend(governance, who)
        private_redis.start()  # empty: every counter is gone
        await spend(governance, who)  # reconnects by itself, seeds from the ledger
        await spend(governance, who)
        with pytest.raises(LimitExceeded, match=r"\$0.05 spent of \$0.05"):
            await spend(governance, who)


async def test_counter_store_errors_may_fall_back_to_local_counters(
    store_target: StoreTarget, private_redis: RedisServer
) -> None:
    config = settings(
        store_target.url,
        redis=private_redis.url,
        on_counter_store_error="allow",
        **with_limits(rate_limit={"requests": "2/1d"}),
    )
    async with running(config, store_target.connect_args, Clock()) as governance:
        who = await principal(governance, "alpha")
        private_redis.stop()
        await spend(governance, who, target="mock/free")
        await spend(governance, who, target="mock/free")
        with pytest.raises(LimitExceeded):  # the local counters still limit this replica
            await spend(governance, who, target="mock/free")
        assert governance.governor.fallbacks_used >= 3


@pytest.mark.redis
async def test_replicas_sharing_redis_allow_exactly_the_limit_between_them(tmp_path: Path) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    store_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    config = settings(store_url, redis=REDIS_URL, **with_limits(rate_limit={"requests": "50/1d"}))
    async with running(config, {}):
        pass  # seed the store once, as a deployment's first replica would
    payload = json.dumps(config.model_dump(mode="json", exclude={"admin_key"}) | _secrets(config))
    replicas = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.toolpolicy.replica_admit", payload, "100"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for replica in replicas:
            assert replica.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(replica.stdout.readline), 60)
            assert line.strip() == "ready", f"replica did not start: {line!r}"
        results = []
        for replica in replicas:
            assert replica.stdin is not None
            replica.stdin.write("go\n")
            replica.stdin.flush()
        for replica in replicas:
            out, err = await asyncio.to_thread(replica.communicate, timeout=60)
            assert replica.returncode == 0, err
            results.append(int(out.strip()))
        assert sum(results) == 50
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
                replica.wait()


def _secrets(config: Any) -> dict[str, Any]:
    """model_dump hides secrets; the replicas need the key values back."""
    keys = [
        {**key.model_dump(mode="json"), "value": key.value.get_secret_value() if key.value else None}
        for key in config.virtual_keys
    ]
    return {"virtual_keys": keys}
