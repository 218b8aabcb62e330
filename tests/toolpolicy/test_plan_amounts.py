"""A plan's amounts put in per request (`PlanCache`, `with_amount`) against the limits built for the request itself:
the same fields, and byte for byte the same texts for the counter stores, whatever the amounts' order."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from hypothesis import given, settings, strategies as st

from tests.toolpolicy.test_plan_cache import principal as team_key
from toolpolicy.counters.base import Limit
from toolpolicy.counters.redis_scripts import CounterKeys, StaticParts
from toolpolicy.governor import llm_rate_limits
from toolpolicy.plan import Planned, entity_budgets, rate_limit, with_amount
from toolpolicy.plan_cache import PlanCache
from toolpolicy.types import Principal

NOW = datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC)
RATE = {"requests": "600/1m", "tokens": "100000/1m"}


def principal() -> Principal:
    """`test_plan_cache`'s key and team, with a customer and a rate limit as well."""
    key = team_key()
    limits = {**key.limits, "customer_budgets": [{"max_usd": 500, "period": "1M"}], "rate_limit": RATE}
    return dataclasses.replace(key, customer="acme", customer_id="c1", limits=limits)


def fields(planned: Sequence[Planned], limits: Sequence[Limit]) -> list[tuple[object, ...]]:
    """Every field of each limit but `origin` (where its static part came from, not part of it) and of its plan but
    the plan's own limit (the plan's amounts, 0)."""
    return [
        (*(getattr(limit, name.name) for name in dataclasses.fields(limit) if name.name != "origin"),)
        + dataclasses.astuple(item)[1:]
        for item, limit in zip(planned, limits, strict=True)
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 10**7)), min_size=1, max_size=40))
def test_varied_amounts_give_the_limits_and_counter_texts_built_for_each_request(
    amounts: list[tuple[int, int]],
) -> None:
    cache, who = PlanCache(), principal()
    keys = CounterKeys("p:")
    cached_parts, fresh_parts = StaticParts(keys), StaticParts(keys)
    seconds = NOW.timestamp()
    for nano, tokens in amounts:
        budgets = cache.get(("budgets", "k1", None), who, seconds, lambda: entity_budgets(who, 0, NOW, None), (nano,))
        rates = cache.get(
            ("rates", "k1", None), who, seconds, lambda: llm_rate_limits("k1", "key/bot", RATE, NOW), (1, tokens)
        )
        cached, limits = [*rates[0], *budgets[0]], [*rates[1], *budgets[1]]
        fresh = [
            rate_limit("key/bot", "k1", "requests", RATE["requests"], 1, NOW, commit=True),
            rate_limit("key/bot", "k1", "tokens", RATE["tokens"], tokens, NOW, commit=False),
            *entity_budgets(who, nano, NOW, None),
        ]
        assert fields(cached, limits) == fields(fresh, [item.limit for item in fresh])
        assert all(item.limit.amount == 0 for item in cached)  # the plan's own: never a request's
        joined = cached_parts.joined(limits)
        expected = fresh_parts.joined([item.limit for item in fresh])
        assert (joined.amounts, joined.statics) == (expected.amounts, expected.statics)
        assert joined.amounts.split() == [str(item.limit.amount) for item in fresh]
        assert cached_parts.lines(limits) == expected.statics


def test_with_amount_copies_every_field_but_the_amount() -> None:
    for item in [*llm_rate_limits("k1", "key/bot", RATE, NOW), *entity_budgets(principal(), 0, NOW, None)]:
        limit = item.limit
        changed = with_amount(limit, 41)
        assert changed == dataclasses.replace(limit, amount=41)
        assert changed is not limit and limit.amount == 0
        assert changed.origin is limit and with_amount(changed, 7).origin is limit
        assert dataclasses.replace(changed, limit=1).origin is None  # another static part: its own encoding
        assert with_amount(limit, 0) is limit
