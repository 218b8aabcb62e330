"""A session's SSE events in Redis: replayed after an id, that stream only, bounded, and the stream held here; the
same written through the lean client (`RespClient`) as through redis-py's pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator

import mcp_types as types
import pytest
import redis.asyncio as aioredis
from mcp.server.streamable_http import EventMessage

from mcp_hub.shared_sessions.directory import SessionKeys
from mcp_hub.shared_sessions.events import RedisEventStore
from tests.toolpolicy.limits_support import RedisServer
from toolpolicy.counters.resp import RespClient
from toolpolicy.stream_resume import McpStreamResume

pytestmark = pytest.mark.anyio


def note(text: str) -> types.JSONRPCNotification:
    return types.JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"data": text})


@pytest.fixture
async def held() -> list[tuple[str, str]]:
    return []


@pytest.fixture(params=["resp", "pipeline"])
async def store(
    private_redis: RedisServer, held: list[tuple[str, str]], request: pytest.FixtureRequest
) -> AsyncIterator[RedisEventStore]:
    client = aioredis.Redis.from_url(private_redis.url)
    resp = RespClient(private_redis.url, timeout=2) if request.param == "resp" else None

    async def hold(session_id: str, stream_id: str) -> None:
        held.append((session_id, stream_id))

    try:
        yield RedisEventStore(client, "s1", McpStreamResume(max_events=4), 60, hold, keys=SessionKeys(), resp=resp)
    finally:
        if resp is not None:
            await resp.aclose()
        await client.aclose()


async def replayed(store: RedisEventStore, last: str) -> tuple[str | None, list[object]]:
    sent: list[EventMessage] = []

    async def send(event: EventMessage) -> None:
        sent.append(event)

    stream = await store.replay_events_after(last, send)
    return stream, [event.message.params["data"] for event in sent]  # type: ignore[union-attr]


async def test_a_resumed_stream_gets_what_followed_on_it_and_is_held_here(
    store: RedisEventStore, held: list[tuple[str, str]]
) -> None:
    priming = await store.store_event("7", None)
    await store.store_event("7", note("one"))
    await store.store_event("8", note("other stream"))
    await store.store_event("7", note("two"))
    assert await replayed(store, priming) == ("7", ["one", "two"])
    assert held == [("s1", "7")] and store.resumed == {"7"}


async def test_an_unknown_or_unreadable_event_id_replays_nothing(store: RedisEventStore) -> None:
    await store.store_event("7", note("one"))
    assert await replayed(store, "1-0") == (None, [])
    assert await replayed(store, "not an id") == (None, [])


async def test_the_store_keeps_the_newest_events_only(store: RedisEventStore) -> None:
    first = await store.store_event("7", None)
    ids = [await store.store_event("7", note(str(number))) for number in range(5)]
    assert await replayed(store, first) == (None, [])  # dropped: past `max_events`
    assert await replayed(store, ids[1]) == ("7", ["2", "3", "4"])
    assert 0 < await store.client.ttl(store.key) <= 60


async def test_without_redis_events_are_still_numbered_but_not_kept(
    store: RedisEventStore, private_redis: RedisServer
) -> None:
    private_redis.stop()
    first = await store.store_event("7", note("lost"))
    assert first.startswith("unkept-") and first != await store.store_event("7", None)
    assert await replayed(store, first) == (None, [])


async def test_both_writers_leave_the_same_stream(private_redis: RedisServer) -> None:
    client = aioredis.Redis.from_url(private_redis.url)
    resp = RespClient(private_redis.url, timeout=2)

    async def hold(session_id: str, stream_id: str) -> None:
        pass

    settings = McpStreamResume(max_events=3)
    lean = RedisEventStore(client, "lean", settings, 60, hold, keys=SessionKeys(), resp=resp)
    pipelined = RedisEventStore(client, "pipelined", settings, 60, hold, keys=SessionKeys())
    try:
        for store in (lean, pipelined):
            for number in range(5):
                event_id = await store.store_event(str(number % 2), note(str(number)) if number else None)
                assert isinstance(event_id, str) and "-" in event_id
        streams = [[fields for _, fields in await client.xrange(store.key)] for store in (lean, pipelined)]
        assert streams[0] == streams[1] and len(streams[0]) == 3
        for store in (lean, pipelined):
            assert 0 < await client.ttl(store.key) <= 60
    finally:
        await resp.aclose()
        await client.aclose()
