"""Both counter stores answer alike: two-stage reservations, rolling windows named as a range, exact large numbers."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.conftest import REDIS_URL, require_service
from toolpolicy.counters.base import CounterStore, Limit, Settlement
from toolpolicy.counters.memory import MemoryCounterStore

pytestmark = pytest.mark.anyio

NOW = 1_795_000_000.0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    require_service("Redis", "127.0.0.1", 6379)
    from toolpolicy.counters.redis import RedisCounterStore

    redis_store = RedisCounterStore(REDIS_URL)
    try:
        yield redis_store
    finally:
        await redis_store.aclose()


def name(what: str) -> str:
    """A counter of this test's own in the shared Redis."""
    return f"test:{uuid.uuid4().hex}:{what}"


def counted(key: str, limit: int, amount: int) -> Limit:
    return Limit(key, (key,), key, limit=limit, amount=amount, commit=True, ttl=600)


def held(key: str, limit: int, amount: int) -> Limit:
    return Limit(key, (key,), key, limit=limit, amount=amount, ttl=600)


async def usage(store: CounterStore, limit: Limit) -> int:
    outcome = await store.reserve(
        uuid.uuid4().hex, [Limit(**{**_fields(limit), "amount": 0})], now=NOW, hold_seconds=60
    )
    assert outcome.ok, outcome
    return outcome.usage[0]


def _fields(limit: Limit) -> dict[str, object]:
    return {field.name: getattr(limit, field.name) for field in dataclasses.fields(limit) if field.init}


async def test_a_second_stage_without_room_leaves_the_first_taken(store: CounterStore) -> None:
    requests, budget = counted(name("requests"), 5, 1), held(name("budget"), 10, 20)
    outcome = await store.reserve("r1", [requests, budget], now=NOW, hold_seconds=60, split=1)
    assert (outcome.ok, outcome.failed, outcome.usage) == (False, 1, (0, 0))
    assert await usage(store, requests) == 1
    assert await usage(store, budget) == 0


async def test_a_first_stage_without_room_takes_nothing(store: CounterStore) -> None:
    requests, budget = counted(name("requests"), 0, 1), held(name("budget"), 10, 5)
    outcome = await store.reserve("r1", [requests, budget], now=NOW, hold_seconds=60, split=1)
    assert (outcome.ok, outcome.failed) == (False, 0)
    assert await usage(store, requests) == 0
    assert await usage(store, budget) == 0


async def test_the_second_stage_counts_what_the_first_took(store: CounterStore) -> None:
    key = name("shared")
    first, second = held(key, 10, 6), held(key, 10, 6)
    outcome = await store.reserve("r1", [first, second], now=NOW, hold_seconds=60, split=1)
    assert (outcome.ok, outcome.failed, outcome.usage) == (False, 1, (0, 6))
    assert await usage(store, first) == 6
    outcome = await store.reserve("r2", [held(key, 20, 6), held(key, 20, 6)], now=NOW, hold_seconds=60, split=1)
    assert (outcome.ok, outcome.usage) == (True, (6, 12))


async def test_missing_buckets_are_reported_before_anything_is_taken(store: CounterStore) -> None:
    requests = counted(name("requests"), 5, 1)
    budget = Limit(name("budget"), (name("bucket"),), name("bucket"), limit=10, amount=1, ttl=600, seeded=True)
    outcome = await store.reserve("r1", [requests, budget], now=NOW, hold_seconds=60, split=1)
    assert outcome.missing == budget.used_keys
    assert await usage(store, requests) == 0


async def test_a_rolling_window_sums_its_buckets_named_as_a_range(store: CounterStore) -> None:
    prefix = name("rolling") + ":1hr@"
    buckets = tuple(f"{prefix}{index}" for index in range(100, 161))
    for bucket, used in ((buckets[0], 3), (buckets[30], 4), (buckets[-1], 5)):
        await store.seed(bucket, used, 3600, now=NOW)
    await store.seed(f"{prefix}99", 1000, 3600, now=NOW)  # just outside the window
    ranged = Limit(name("hold"), buckets, buckets[-1], limit=100, amount=1, ttl=3600, used_prefix=prefix)
    listed = Limit(name("hold"), buckets, buckets[-1], limit=100, amount=1, ttl=3600)
    assert await usage(store, ranged) == await usage(store, listed) == 12
    await store.settle("r1", [Settlement(ranged, 7)], now=NOW)
    assert await usage(store, listed) == 19


async def test_usage_beyond_fourteen_digits_is_exact(store: CounterStore) -> None:
    spent = 123_456_789_012_345_678 // 1000  # nano-USD: about $123,456 spent, 15 digits
    budget = held(name("budget"), 10**16, 1)
    await store.settle("r0", [Settlement(budget, spent)], now=NOW)
    assert await usage(store, budget) == spent
    outcome = await store.reserve("r1", [budget], now=NOW, hold_seconds=60)
    assert outcome.usage == (spent,)
    await store.settle("r1", [Settlement(budget, 1)], now=NOW)
    assert await usage(store, budget) == spent + 1
