"""The counter store's pipelined Redis connection: replies in order, errors as redis-py's, a restart survived."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError, ResponseError

from tests.toolpolicy.limits_support import RedisServer
from toolpolicy.counters.resp import RespClient

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


def test_supports_only_plain_tcp_urls() -> None:
    assert RespClient.supports("redis://127.0.0.1:6379/15")
    assert RespClient.supports("redis://:secret@redis:6379")
    assert not RespClient.supports("rediss://redis:6380/0")
    assert not RespClient.supports("unix:///run/redis.sock")
    assert not RespClient.supports("redis://redis:6379/0?socket_timeout=3")


async def test_concurrent_commands_get_their_own_replies(private_redis: RedisServer) -> None:
    client = RespClient(private_redis.url.replace("/0", "/3"), timeout=2)
    try:
        replies = await asyncio.gather(*(client.execute("INCRBY", f"k{i % 5}", i) for i in range(200)))
        # Each INCRBY answers the key's running total: the replies line up with their commands.
        totals = {f"k{j}": sum(i for i in range(200) if i % 5 == j) for j in range(5)}
        finals = {f"k{i % 5}": reply for i, reply in enumerate(replies) if i >= 195}
        assert finals == totals
        assert await client.execute("ECHO", "x") == b"x"
        with pytest.raises(ResponseError, match="unknown command"):
            await client.execute("NO-SUCH-COMMAND")
        assert await client.execute("GET", "k0") == str(totals["k0"]).encode()  # the connection is still in step
    finally:
        await client.aclose()


async def test_a_restarted_redis_is_reconnected_to(private_redis: RedisServer) -> None:
    client = RespClient(private_redis.url, timeout=2)
    try:
        assert await client.execute("SET", "a", "1") == b"OK"
        private_redis.stop()
        with pytest.raises(RedisConnectionError):
            await client.execute("GET", "a")
        private_redis.start()
        assert await client.execute("SET", "a", "2") == b"OK"  # a fresh connection, without being asked
    finally:
        await client.aclose()
