"""What a reservation costs Redis: a rolling window read from its summary, holds swept and kept alive only when due.

The figures are Redis commands run by the scripts (`INFO commandstats`), and each shortcut keeps the counts exact.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.toolpolicy.counters.test_stores import NOW, counted, held
from tests.toolpolicy.limits_support import RedisServer
from toolpolicy.counters.base import Limit, Settlement
from toolpolicy.counters.redis import RedisCounterStore

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

PREFIX = "b:team:t1:-:1dr@"


@pytest.fixture
async def store(private_redis: RedisServer) -> AsyncIterator[RedisCounterStore]:
    counters = RedisCounterStore(private_redis.url)
    try:
        yield counters
    finally:
        await counters.aclose()


@pytest.fixture
async def client(private_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis_client = aioredis.Redis.from_url(private_redis.url)
    try:
        yield redis_client
    finally:
        await redis_client.aclose()


def rolling(first: int, amount: int = 1, *, limit: int = 10**9, buckets: int = 61) -> Limit:
    """A budget over the buckets `first`.. (61 like a rolling budget's), named as a range, seeded."""
    keys = tuple(f"{PREFIX}{index}" for index in range(first, first + buckets))
    return Limit("team-1dr", keys, keys[-1], limit=limit, amount=amount, ttl=90_000, seeded=True, used_prefix=PREFIX)


async def usage(store: RedisCounterStore, limit: Limit, now: float = NOW) -> int:
    outcome = await store.reserve(uuid.uuid4().hex, [rolling(limit_first(limit), 0)], now=now, hold_seconds=60)
    assert outcome.ok, outcome
    return outcome.usage[0]


def limit_first(limit: Limit) -> int:
    return int(limit.used_keys[0].rpartition("@")[2])


async def seed_all(store: RedisCounterStore, first: int, last: int) -> int:
    """Seed buckets first..last with usage 1, 2, ...; their total."""
    for index in range(first, last + 1):
        await store.seed(f"{PREFIX}{index}", index - first + 1, 90_000, now=NOW)
    return sum(range(1, last - first + 2))


async def commands(client: aioredis.Redis) -> dict[str, int]:
    """Redis commands run since the last reset, by name."""
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): figures["calls"] for name, figures in stats.items()}


async def test_a_rolling_window_is_read_from_its_summary(store: RedisCounterStore, client: aioredis.Redis) -> None:
    total = await seed_all(store, 100, 160)
    assert await usage(store, rolling(100)) == total  # reads the 61 buckets once, and sums the closed ones
    await client.config_resetstat()
    outcome = await store.reserve("r1", [rolling(100, 5)], now=NOW, hold_seconds=60)
    assert (outcome.ok, outcome.usage) == (True, (total,))
    ran = await commands(client)
    assert ran.get("hget", 0) + ran.get("hmget", 0) <= 4  # not one per bucket
    assert await usage(store, rolling(100)) == total + 5


async def test_a_late_settlement_into_a_summarised_bucket_counts(store: RedisCounterStore) -> None:
    total = await seed_all(store, 90, 160)
    window = rolling(100)
    assert await usage(store, window) == sum(range(11, 72))
    # A request whose plan was made while bucket 150 was the current one settles now, into a closed bucket.
    earlier = rolling(90, 7)
    assert (await store.reserve("late", [earlier], now=NOW, hold_seconds=60)).ok
    await store.settle("late", [Settlement(earlier, 3)], now=NOW)
    await store.flush()
    assert await usage(store, window) == sum(range(11, 72)) + 3
    assert total == sum(range(1, 72))


async def test_the_summary_follows_the_window_as_it_moves(store: RedisCounterStore) -> None:
    await seed_all(store, 100, 161)
    assert await usage(store, rolling(100)) == sum(range(1, 62))
    assert await usage(store, rolling(101)) == sum(range(2, 63))  # bucket 100 left, 161 came in
    await store.settle("r1", [Settlement(rolling(101), 4)], now=NOW)  # into the current bucket, 161
    await store.flush()
    assert await usage(store, rolling(101)) == sum(range(2, 63)) + 4


async def test_a_missing_bucket_is_reported_and_not_summarised(store: RedisCounterStore) -> None:
    await seed_all(store, 41, 100)  # the window is 40..100: bucket 40 is missing
    outcome = await store.reserve("r1", [rolling(40)], now=NOW, hold_seconds=60)
    assert outcome.missing == (f"{PREFIX}40",)
    assert await store.reserve("r2", [rolling(40)], now=NOW, hold_seconds=60) == outcome  # not summarised without it
    await store.seed(f"{PREFIX}40", 1000, 90_000, now=NOW)
    assert await usage(store, rolling(40)) == 1000 + sum(range(1, 61))
    assert await usage(store, rolling(40)) == 1000 + sum(range(1, 61))  # from the summary


async def test_an_expired_hold_is_swept_exactly(store: RedisCounterStore) -> None:
    limit = held(f"h-{uuid.uuid4().hex}", 100, 5)
    assert (await store.reserve("r1", [limit], now=NOW, hold_seconds=10)).ok
    second = dataclasses.replace(limit, amount=1)
    outcome = await store.reserve("r2", [second], now=NOW + 1, hold_seconds=10)
    assert outcome.usage == (5,)
    outcome = await store.reserve("r3", [second], now=NOW + 10.5, hold_seconds=10)
    assert outcome.usage == (1,)  # r1's hold ended at NOW + 10, r2's stands until NOW + 11
    # r3's ends on the whole second after NOW + 20.5 (the store's holds end on whole seconds: an over-count only).
    assert (await store.reserve("r4", [second], now=NOW + 20.5, hold_seconds=10)).usage == (1,)
    assert (await store.reserve("r5", [second], now=NOW + 21, hold_seconds=10)).usage == (1,)  # r4's alone


async def test_each_hold_lasts_the_hold_time_it_was_reserved_with(store: RedisCounterStore) -> None:
    # The store formats a hold time once and reuses the text while reservations pass the same one: a new one counts.
    limit = held(f"h-{uuid.uuid4().hex}", 100, 5)
    second = dataclasses.replace(limit, amount=1)
    assert (await store.reserve("r1", [limit], now=NOW, hold_seconds=10.0)).ok
    assert (await store.reserve("r2", [second], now=NOW, hold_seconds=2.5)).ok
    assert (await store.reserve("r3", [second], now=NOW, hold_seconds=10.0)).ok
    outcome = await store.reserve("r4", [second], now=NOW + 3, hold_seconds=10.0)
    assert outcome.usage == (6,)  # r2's hold ended at NOW + 2.5; r1's and r3's stand until NOW + 10


async def test_holds_are_swept_and_kept_alive_only_when_due(
    store: RedisCounterStore, client: aioredis.Redis, private_redis: RedisServer
) -> None:
    limit = held("budget", 10**6, 5)
    await client.config_resetstat()
    for index in range(10):
        assert (await store.reserve(f"r{index}", [limit], now=NOW + index, hold_seconds=600)).ok
    ran = await commands(client)
    assert ran.get("zrangebyscore", 0) == 0  # no hold could have expired yet
    assert ran.get("expire", 0) == 2  # the hash and its deadlines, once
    assert await client.ttl(store.keys.hold + "budget") > 600
    assert await client.ttl(store.keys.hold + "budget:q") > 600
    outcome = await store.reserve("late", [limit], now=NOW + 700, hold_seconds=600)
    assert outcome.usage == (0,)  # every earlier hold expired, and was swept


async def test_a_bucket_gets_its_ttl_when_a_commit_makes_it_and_keeps_it_after(
    store: RedisCounterStore, client: aioredis.Redis
) -> None:
    limit = counted(f"c-{uuid.uuid4().hex}", 10**6, 1)
    bucket = store.keys.used + limit.add_key
    await client.config_resetstat()
    assert (await store.reserve("r1", [limit], now=NOW, hold_seconds=60)).ok
    assert (await commands(client)).get("expire", 0) == 1 and 590 < await client.ttl(bucket) <= 600
    await client.expire(bucket, 100)  # as if 500 s had gone by
    await client.config_resetstat()
    for index in range(2, 6):
        assert (await store.reserve(f"r{index}", [limit], now=NOW + index, hold_seconds=60)).ok
    assert (await commands(client)).get("expire", 0) == 0 and await client.ttl(bucket) <= 100
    assert await client.hget(bucket, "used") == b"5"


async def test_a_settled_amount_makes_its_bucket_with_a_ttl(store: RedisCounterStore, client: aioredis.Redis) -> None:
    limit = held(f"h-{uuid.uuid4().hex}", 10**6, 5)
    assert (await store.reserve("r1", [limit], now=NOW, hold_seconds=60)).ok
    await store.settle("r1", [Settlement(limit, 3)], now=NOW + 1)
    await store.flush()
    bucket = store.keys.used + limit.add_key
    assert await client.hget(bucket, "used") == b"3" and 590 < await client.ttl(bucket) <= 600


async def test_a_hold_sent_twice_is_held_once_and_settled_once(store: RedisCounterStore) -> None:
    # As when a reservation is re-sent on a new connection after Redis had run it on the lost one.
    limit = held(f"h-{uuid.uuid4().hex}", 100, 30)
    probe = dataclasses.replace(limit, amount=0)
    assert (await store.reserve("r1", [limit], now=NOW, hold_seconds=60)).ok
    assert (await store.reserve("r1", [limit], now=NOW, hold_seconds=60)).usage == (30,)
    assert (await store.reserve("probe", [probe], now=NOW, hold_seconds=60)).usage == (30,)
    for _ in range(2):  # a settlement sent twice drops the hold once
        await store.settle("r1", [Settlement(limit, 0)], now=NOW)
        await store.flush()
    assert (await store.reserve("probe", [probe], now=NOW, hold_seconds=60)).usage == (0,)


async def test_holds_taken_by_earlier_releases_count_until_they_expire(
    store: RedisCounterStore, client: aioredis.Redis
) -> None:
    # Before 2026-12 a hold was a hash field by request id, its deadline in `<hold key>:z` (a replica of an earlier
    # release may still hold during an upgrade, and one that stopped leaves its holds to expire).
    limit = held(f"h-{uuid.uuid4().hex}", 100, 1)
    hold_key = store.keys.hold + limit.hold_key
    await client.hset(hold_key, mapping={"old": 40, "__total": 40, "__next": NOW + 10})
    await client.zadd(hold_key + ":z", {"old": NOW + 10})
    assert (await store.reserve("new", [limit], now=NOW, hold_seconds=60)).usage == (40,)
    assert (await store.reserve("later", [limit], now=NOW + 11, hold_seconds=60)).usage == (1,)  # `old` expired
    assert await client.hget(hold_key, "old") is None and await client.zcard(hold_key + ":z") == 0
    await store.settle("new", [Settlement(limit, 0)], now=NOW + 12)
    await store.settle("later", [Settlement(limit, 0)], now=NOW + 12)
    await store.flush()
    assert await client.hget(hold_key, "__total") == b"0"


async def test_a_counted_limit_reads_no_holds(store: RedisCounterStore, client: aioredis.Redis) -> None:
    limit = counted(f"c-{uuid.uuid4().hex}", 3, 1)
    await client.config_resetstat()
    for index in range(3):
        assert (await store.reserve(f"r{index}", [limit], now=NOW, hold_seconds=60)).usage == (index,)
    refused = await store.reserve("r3", [limit], now=NOW, hold_seconds=60)
    assert (refused.ok, refused.usage) == (False, (3,))
    ran = await commands(client)
    assert ran.get("hmget", 0) == 0 and ran.get("hget", 0) == 4  # its bucket, once a request


async def test_a_reservation_reads_nothing_its_carried_settlements_just_wrote(
    private_redis: RedisServer, client: aioredis.Redis
) -> None:
    # The settlements ride along with the next reservation (a long interval: no tick sends them on their own).
    store = RedisCounterStore(private_redis.url, settle_interval=60)
    try:
        total = await seed_all(store, 100, 160)
        window = rolling(100, 5)
        for request in ("r1", "r2"):
            assert (await store.reserve(request, [window], now=NOW, hold_seconds=60)).ok
        for request in ("r1", "r2"):
            await store.settle(request, [Settlement(window, 3)], now=NOW)
        await client.config_resetstat()
        outcome = await store.reserve("r3", [window], now=NOW, hold_seconds=60)
        assert (outcome.ok, outcome.usage) == (True, (total + 6,))  # both settled: 3 each, no hold left
        ran = await commands(client)
        # The current bucket: known to exist once the first settlement committed to it, its usage from the second's
        # HINCRBY; the window's summary read once (by the first commit), the holds' hash once (the sweep).
        assert (ran.get("exists", 0), ran.get("hget", 0), ran.get("hmget", 0)) == (1, 0, 2)
        assert await usage(store, window) == total + 6 + 5
    finally:
        await store.aclose()


async def test_a_carried_release_and_the_next_hold_change_a_holds_total_in_one_write(
    private_redis: RedisServer, client: aioredis.Redis
) -> None:
    # The settlements ride along with the next reservation (a long interval: no tick sends them on their own).
    store = RedisCounterStore(private_redis.url, settle_interval=60)
    try:
        same = held(f"h-{uuid.uuid4().hex}", 10**6, 5)
        other = held(f"h-{uuid.uuid4().hex}", 10**6, 5)
        assert (await store.reserve("r1", [same, other], now=NOW, hold_seconds=60)).ok
        await store.settle("r1", [Settlement(same, 0), Settlement(other, 0)], now=NOW)  # released: nothing commits
        await client.config_resetstat()
        larger = dataclasses.replace(other, amount=7)
        outcome = await store.reserve("r2", [same, larger], now=NOW, hold_seconds=60)
        assert (outcome.ok, outcome.usage) == (True, (0, 0))  # r1's holds were dropped first
        # `same`: r1's 5 given back and r2's 5 taken cancel out, no write; `larger`: one write of +2.
        assert (await commands(client)).get("hincrby", 0) == 1
        for limit, total in ((same, b"5"), (other, b"7")):
            assert await client.hget(store.keys.hold + limit.hold_key, "__total") == total
        await store.settle("r2", [Settlement(same, 0), Settlement(larger, 0)], now=NOW)
        await store.flush()  # on its own (the settle script): its changes written all the same
        for limit in (same, other):
            assert await client.hget(store.keys.hold + limit.hold_key, "__total") == b"0"
    finally:
        await store.aclose()


async def test_holds_of_fifteen_digits_are_taken_given_back_and_swept_exactly(store: RedisCounterStore) -> None:
    # A call's changes to a hold's total are summed as Lua numbers (doubles) and written as an integer's text.
    amount = 123_456_789_012_345_678 // 1000  # 15 digits, exact in a double
    limit = held(f"h-{uuid.uuid4().hex}", 10**17, amount)
    probe = dataclasses.replace(limit, amount=0)
    assert (await store.reserve("r1", [limit], now=NOW, hold_seconds=60)).ok
    assert (await store.reserve("r2", [limit], now=NOW, hold_seconds=60)).ok
    assert (await store.reserve("probe", [probe], now=NOW, hold_seconds=60)).usage == (2 * amount,)
    await store.settle("r1", [Settlement(limit, 0)], now=NOW)
    await store.flush()
    assert (await store.reserve("probe", [probe], now=NOW, hold_seconds=60)).usage == (amount,)
    # Swept when expired: the amount taken off the total is written the same way.
    assert (await store.reserve("late", [probe], now=NOW + 61, hold_seconds=60)).usage == (0,)
