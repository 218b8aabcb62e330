"""Which stream a server message belongs on, and whose answer a client's response is."""

from __future__ import annotations

import json

import anyio
import mcp_types as types
import pytest
from mcp.server.streamable_http import GET_STREAM_KEY
from mcp.shared.message import ServerMessageMetadata, SessionMessage

from mcp_hub.shared_sessions import SharedSessions
from mcp_hub.shared_sessions.dispatcher import ReplicaDispatcher
from mcp_hub.shared_sessions.outbound import stream_of
from tests.toolpolicy.limits_support import RedisServer
from toolpolicy.settings import McpHubSettings


def test_responses_go_on_their_request_s_stream_related_messages_on_theirs_the_rest_on_the_get_stream() -> None:
    response = types.JSONRPCResponse(jsonrpc="2.0", id=7, result={})
    notice = types.JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={})
    assert stream_of(SessionMessage(response)) == "7"
    assert stream_of(SessionMessage(notice, metadata=ServerMessageMetadata(related_request_id="abc"))) == "abc"
    assert stream_of(SessionMessage(notice)) == GET_STREAM_KEY


def test_requests_to_the_client_carry_the_replica_that_sent_them() -> None:
    send, receive = anyio.create_memory_object_stream[object](1)
    with send, receive:
        dispatcher = ReplicaDispatcher(receive, send, replica="abc123")  # type: ignore[arg-type]
        assert [dispatcher._allocate_id() for _ in range(2)] == ["abc123.1", "abc123.2"]


def test_an_answer_belongs_to_the_replica_named_in_its_id_unless_that_is_this_one() -> None:
    shared = SharedSessions("redis://127.0.0.1:1/0", McpHubSettings())
    assert shared.owner_of("other.3") == "other"
    assert shared.owner_of(f"{shared.replica}.3") is None
    assert shared.owner_of(3) is None and shared.owner_of("no-separator") is None


@pytest.mark.anyio
async def test_a_message_for_a_stream_held_by_a_replica_that_died_stays_here(private_redis: RedisServer) -> None:
    shared = SharedSessions(private_redis.url, McpHubSettings())
    notice = SessionMessage(types.JSONRPCNotification(jsonrpc="2.0", method="notifications/tools/list_changed"))
    try:
        assert not await shared.route("s1", GET_STREAM_KEY, notice)  # nobody holds it: stored here
        await shared.directory.hold("s1", GET_STREAM_KEY, "gone")  # left behind by a replica that crashed
        assert not await shared.route("s1", GET_STREAM_KEY, notice)  # nobody received it
        assert await shared.directory.holder("s1", GET_STREAM_KEY) is None  # and the stale entry is gone

        pubsub = shared.client.pubsub()
        await pubsub.subscribe("isthmus:mcp:r:alive")
        await shared.directory.hold("s1", GET_STREAM_KEY, "alive")
        assert await shared.route("s1", GET_STREAM_KEY, notice)
        with anyio.fail_after(5):
            while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)) is None:
                pass
        payload = json.loads(message["data"])
        assert payload == {
            "t": "out",
            "s": "s1",
            "st": GET_STREAM_KEY,
            "m": {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},
        }
        await pubsub.aclose()
    finally:
        await shared.close()
