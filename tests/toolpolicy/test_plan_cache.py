"""Plans are built once per key and window: reused within a bucket, rebuilt for a new bucket or a reloaded key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from toolpolicy.plan import Planned, entity_budgets
from toolpolicy.plan_cache import Plan, PlanCache
from toolpolicy.types import Principal

T0 = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)


def principal() -> Principal:
    return Principal(
        key_id="k1",
        key_name="bot",
        team="support",
        team_id="t1",
        limits={
            "budgets": [{"max_usd": 5, "period": "1h"}],
            "team_budgets": [{"max_usd": 50, "period": "1d", "rolling": True}],
        },
    )


def plan(cache: PlanCache, who: Principal, now: datetime, amount: int, built: list[int]) -> Plan:
    def build() -> list[Planned]:
        built.append(1)
        return entity_budgets(who, 0, now, None)

    return cache.get(("budgets", who.key_id), who, now.timestamp(), build, (amount,))


def test_a_plan_is_reused_within_its_windows_and_takes_each_requests_amount() -> None:
    cache, who, built = PlanCache(), principal(), []
    first = plan(cache, who, T0, 7, built)
    later = plan(cache, who, T0 + timedelta(minutes=1), 9, built)
    assert len(built) == 1
    assert [limit.amount for limit in first[1]] == [7, 7]
    assert [limit.amount for limit in later[1]] == [9, 9]
    assert later[0] is first[0]  # the plan's Planned, shared
    assert [limit.hold_key for limit in later[1]] == [limit.hold_key for limit in first[1]]
    assert first[1] == [item.limit for item in entity_budgets(who, 7, T0, None)]  # as built for the request itself
    assert list(first[0]) == entity_budgets(who, 0, T0, None)


def test_a_new_bucket_or_a_reloaded_key_builds_the_plan_again() -> None:
    cache, who, built = PlanCache(), principal(), []
    plan(cache, who, T0, 1, built)
    # The rolling day's buckets are 24 minutes long: 10:48 starts a new one (10:30 is in 10:24-10:48).
    moved = plan(cache, who, T0 + timedelta(minutes=18), 1, built)
    assert len(built) == 2
    assert moved[1] == [item.limit for item in entity_budgets(who, 1, T0 + timedelta(minutes=18), None)]
    plan(cache, who, T0 - timedelta(hours=2), 1, built)  # a clock set back is outside the cached buckets too
    assert len(built) == 3
    plan(cache, principal(), T0 - timedelta(hours=2), 1, built)  # an equal key, reloaded: another object
    assert len(built) == 4


def test_a_plan_is_built_from_the_arguments_given_beside_its_builder() -> None:
    cache, who, calls = PlanCache(), principal(), []

    def build(whose: Principal, amount: int, now: datetime, provider: str | None) -> list[Planned]:
        calls.append((whose, amount, now, provider))
        return entity_budgets(whose, amount, now, provider)

    first = cache.get(("budgets", who.key_id), who, T0.timestamp(), build, (5,), who, 0, T0, None)
    again = cache.get(("budgets", who.key_id), who, T0.timestamp() + 1, build, (5,), who, 0, T0, None)
    assert calls == [(who, 0, T0, None)]  # found the second time: not built, its arguments unused
    assert again is first
    assert [limit.amount for limit in first[1]] == [5, 5]
    assert list(first[0]) == entity_budgets(who, 0, T0, None)
