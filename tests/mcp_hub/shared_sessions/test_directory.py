"""The Redis half of shared sessions, against a private redis-server: records, subscription holders, liveness."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
import redis.asyncio as aioredis

from mcp_hub.shared_sessions.directory import ORPHANED, SessionDirectory, SessionKeys, SessionRecord
from tests.toolpolicy.limits_support import RedisServer

pytestmark = pytest.mark.anyio

OWNER = {"client_id": "key-1", "issuer": None, "subject": "/mcp"}
RECORD = SessionRecord(OWNER, "2025-06-18", {"protocolVersion": "2025-06-18", "capabilities": {}})


@pytest.fixture
async def directory(private_redis: RedisServer) -> AsyncIterator[SessionDirectory]:
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        yield SessionDirectory(client, ttl=60, keys=SessionKeys())
    finally:
        await client.aclose()


async def test_a_record_reads_back_as_written_and_expires_with_the_session(directory: SessionDirectory) -> None:
    await directory.save("s1", RECORD)
    assert await directory.load("s1") == RECORD
    assert 0 < await directory.client.ttl("isthmus:mcp:s:s1") <= 60
    assert await directory.load("unknown") is None


async def test_a_log_level_is_kept_but_never_recreates_an_ended_session(directory: SessionDirectory) -> None:
    await directory.save("s1", RECORD)
    await directory.set_level("s1", "warning")
    loaded = await directory.load("s1")
    assert loaded is not None and loaded.log_level == "warning" and loaded.owner == OWNER
    await directory.end("s1")
    await directory.set_level("s1", "info")
    assert await directory.load("s1") is None
    assert not await directory.client.exists("isthmus:mcp:s:s1")


async def test_one_replica_wins_a_subscription_that_its_holder_gave_up(directory: SessionDirectory) -> None:
    await directory.subscribed("s1", "web", "note://a", "isthmus://web/note://a", "r1")
    await directory.subscribed("s1", "web", "note://b", "isthmus://web/note://b", "r2")
    assert await directory.orphan("s1", "r1") == 1
    held = {(server, uri): (holder, named) for server, uri, holder, named in await directory.subscriptions("s1")}
    assert held == {
        ("web", "note://a"): (ORPHANED, "isthmus://web/note://a"),
        ("web", "note://b"): ("r2", "isthmus://web/note://b"),
    }
    claims = [await directory.claim("s1", "web", "note://a", ORPHANED, replica) for replica in ("r3", "r4")]
    assert claims == [True, False]
    assert ("web", "note://a", "r3", "isthmus://web/note://a") in await directory.subscriptions("s1")
    await directory.unsubscribed("s1", "web", "note://a")
    assert [uri for _, uri, _, _ in await directory.subscriptions("s1")] == ["note://b"]


async def test_a_replica_is_alive_while_it_listens_on_its_channel(directory: SessionDirectory) -> None:
    assert await directory.listening({"r1", "r2"}) == set()
    pubsub = directory.client.pubsub()
    await pubsub.subscribe("isthmus:mcp:r:r1")
    try:
        assert await directory.listening({"r1", "r2"}) == {"r1"}
        assert await directory.publish("isthmus:mcp:r:r1", {"t": "x"}) == 1
        assert await directory.publish("isthmus:mcp:r:r2", {"t": "x"}) == 0
    finally:
        await pubsub.aclose()


async def test_a_stream_holder_is_released_only_by_itself(directory: SessionDirectory) -> None:
    await directory.hold("s1", "_GET_stream", "r1")
    await directory.release("s1", "_GET_stream", "r2")
    assert await directory.holder("s1", "_GET_stream") == "r1"
    await directory.release("s1", "_GET_stream", "r1")
    assert await directory.holder("s1", "_GET_stream") is None
    with anyio.fail_after(1):
        await directory.touch("s1")  # no record: nothing to refresh, no error
