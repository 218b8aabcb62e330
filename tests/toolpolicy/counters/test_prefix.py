"""Counters under a deployment's `redis_prefix`: deployments on one Redis count apart; the default keeps its names."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from tests.toolpolicy.counters.test_stores import NOW, held
from tests.toolpolicy.limits_support import RedisServer
from toolpolicy.counters.base import Limit
from toolpolicy.counters.redis import RedisCounterStore

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def redis_keys(url: str) -> set[str]:
    """Every key in that Redis."""
    client = aioredis.Redis.from_url(url)
    try:
        return {key.decode() for key in await client.keys("*")}
    finally:
        await client.aclose()


def rolling(prefix: str, first: int, last: int) -> Limit:
    buckets = tuple(f"{prefix}{bucket}" for bucket in range(first, last + 1))
    return Limit("roll", buckets, buckets[-1], limit=3, amount=1, commit=True, ttl=600, used_prefix=prefix)


async def test_two_prefixes_on_one_redis_each_hold_their_own_limit(private_redis: RedisServer) -> None:
    staging = RedisCounterStore(private_redis.url, prefix="staging:")
    production = RedisCounterStore(private_redis.url, prefix="production:")
    limit = Limit("calls", ("calls",), "calls", limit=2, amount=1, commit=True, ttl=600)
    try:
        for store in (staging, production, staging, production):
            assert (await store.reserve(uuid.uuid4().hex, [limit], now=NOW, hold_seconds=60)).ok
        for store in (staging, production):
            refused = await store.reserve(uuid.uuid4().hex, [limit], now=NOW, hold_seconds=60)
            assert (refused.ok, refused.usage) == (False, (2,))
    finally:
        await staging.aclose()
        await production.aclose()
    keys = sorted(await redis_keys(private_redis.url))
    assert keys == ["production:since", "production:u:calls", "staging:since", "staging:u:calls"]


async def test_the_default_prefix_keeps_the_key_names_of_earlier_releases(private_redis: RedisServer) -> None:
    store = RedisCounterStore(private_redis.url)
    budget = held("budget", 10, 4)
    try:
        assert (await store.reserve("r1", [budget, rolling("w:", 7, 8)], now=NOW, hold_seconds=60)).ok
        await store.seed("seeded", 5, 600, now=NOW)
    finally:
        await store.aclose()
    keys = sorted(await redis_keys(private_redis.url))
    assert keys == [
        "isthmus:h:budget",
        "isthmus:h:budget:q",  # the holds (releases before 2026-12: `:z`, still swept)
        "isthmus:since",
        "isthmus:u:seeded",
        "isthmus:u:w:8",
    ]
