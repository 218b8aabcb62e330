"""The counter store's pipelined Redis connection: replies in order, errors as redis-py's, a restart survived, a
command left unanswered timed out."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
)

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


async def test_a_command_left_unanswered_times_out_and_the_next_one_connects_anew(private_redis: RedisServer) -> None:
    client = RespClient(private_redis.url, timeout=0.3)
    try:
        with anyio.fail_after(10):
            # The ECHO arms the connection's one timer; when it fires, the BLPOP (blocked for good on an empty list)
            # is not due yet: the timer waits for it, then fails it.
            echoed, blocked = await asyncio.gather(
                client.execute("ECHO", "x"), client.execute("BLPOP", "empty", 0), return_exceptions=True
            )
            assert echoed == b"x"
            assert isinstance(blocked, RedisTimeoutError)
            assert await client.execute("ECHO", "y") == b"y"
    finally:
        await client.aclose()


async def test_commands_behind_an_unanswered_one_are_sent_again_on_a_new_connection(
    private_redis: RedisServer,
) -> None:
    client = RespClient(private_redis.url, timeout=0.3)
    try:
        with anyio.fail_after(10):
            blocked, behind = await asyncio.gather(
                client.execute("BLPOP", "empty", 0), client.execute("ECHO", "x"), return_exceptions=True
            )
            assert isinstance(blocked, RedisTimeoutError)
            assert behind == b"x"  # its connection was dropped under it: sent once more, as redis-py's pool does
    finally:
        await client.aclose()


async def test_a_cancelled_command_is_not_waited_for_but_the_one_behind_it_is(private_redis: RedisServer) -> None:
    client = RespClient(private_redis.url, timeout=0.3)
    try:
        with anyio.fail_after(10):
            abandoned = asyncio.ensure_future(client.execute("BLPOP", "empty", 0))
            await asyncio.sleep(0)  # sent
            abandoned.cancel()
            with pytest.raises(RedisTimeoutError):
                await client.execute("BLPOP", "empty", 0)
            assert abandoned.cancelled()
    finally:
        await client.aclose()
