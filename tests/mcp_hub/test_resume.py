"""Resumable SSE streams for 2025-era sessions (SEP-1699): every POST stream opens with a priming event (an id, no
data, a `retry`), and a client that reconnects with `Last-Event-ID` gets the rest of that stream, its own session's
only. Each session's store is bounded and dropped with the session. An upstream that closes a call's stream to be
polled has the hub close its client's stream too."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from hypothesis import given, strategies as st

from mcp_hub.resume import SessionEventStore
from tests.mcp_hub.conftest import FULL_KEY, Gateway, fixture_server, free_port, hub_settings, serving

pytestmark = pytest.mark.anyio

LEGACY_VERSION = "2025-11-25"
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
RETRY_MS = 750


@dataclass
class SseEvent:
    id: str | None
    data: str
    retry: int | None


async def sse_events(response: httpx2.Response) -> AsyncIterator[SseEvent]:
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                retry = fields.get("retry")
                yield SseEvent(fields.get("id"), fields.get("data", ""), int(retry) if retry else None)
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


@pytest.fixture(scope="module")
async def polling_server() -> AsyncIterator[str]:
    async with conformance_server() as url:
        yield url


@asynccontextmanager
async def conformance_server() -> AsyncIterator[str]:
    """The conformance test server, whose `test_reconnection` closes its call's stream mid-call (SEP-1699)."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.conformance.server", "--port", str(port)]
    process = await anyio.open_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with anyio.fail_after(20):
            while True:
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, polling_server: str) -> AsyncIterator[Gateway]:
    servers = {"fx": fixture_server(), "poll": {"url": polling_server, "protocol": "legacy"}}
    settings = hub_settings(tmp_path_factory.mktemp("resume"), servers, mcp={"resume": {"retry_ms": RETRY_MS}})
    async with serving(settings) as started:
        yield started


async def open_session(http: httpx2.AsyncClient) -> dict[str, str]:
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    opened = await http.post("/mcp", json=initialize, headers=MCP_HEADERS)
    assert opened.status_code == 200, opened.text
    session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": LEGACY_VERSION}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post("/mcp", json=initialized, headers={**MCP_HEADERS, **session})).status_code == 202
    return session


async def call(http: httpx2.AsyncClient, session: dict[str, str], request: dict[str, Any]) -> list[SseEvent]:
    """Every event of the POST's stream, up to and including the response."""
    events: list[SseEvent] = []
    with anyio.fail_after(20):
        async with http.stream("POST", "/mcp", json=request, headers={**MCP_HEADERS, **session}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in sse_events(response):
                events.append(event)
                if event.data and json.loads(event.data).get("id") == request["id"]:
                    break
    return events


async def resume(http: httpx2.AsyncClient, session: dict[str, str], last_event_id: str, request_id: int) -> list[Any]:
    """The messages replayed after `last_event_id`, up to the response to `request_id`."""
    messages: list[Any] = []
    headers = {"accept": "text/event-stream", "last-event-id": last_event_id, **session}
    with anyio.fail_after(20):
        async with http.stream("GET", "/mcp", headers=headers) as response:
            assert response.status_code == 200
            async for event in sse_events(response):
                if event.data:
                    messages.append(json.loads(event.data))
                    if messages[-1].get("id") == request_id:
                        break
    return messages


def progress_call(request_id: int, token: str, steps: int = 3) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "fx__progress", "arguments": {"steps": steps}, "_meta": {"progressToken": token}},
    }


async def test_a_post_stream_primes_first_and_a_reconnecting_client_gets_the_rest(gateway: Gateway) -> None:
    async with gateway.http(FULL_KEY) as http:
        session = await open_session(http)
        events = await call(http, session, progress_call(7, "tok"))
        priming = events[0]
        assert priming.id and priming.data == "" and priming.retry == RETRY_MS
        assert all(event.id for event in events)  # every event can be resumed from

        replayed = await resume(http, session, priming.id, 7)
        assert [m["params"]["progress"] for m in replayed[:-1]] == [1, 2, 3]
        assert replayed[-1]["result"]["content"][0]["text"] == "done after 3 steps"

        # From the middle: only what came after.
        second_progress = events[2].id
        assert second_progress is not None
        assert [m.get("params", {}).get("progress") for m in await resume(http, session, second_progress, 7)] == [
            3,
            None,
        ]
        await http.delete("/mcp", headers=session)


async def test_an_upstream_that_closes_a_call_s_stream_has_the_hub_close_its_client_s(gateway: Gateway) -> None:
    async with gateway.http(FULL_KEY) as http:
        session = await open_session(http)
        events = await cut_off_then_resumed(http, http, session)
        assert events[0].data == "" and events[0].id
        await http.delete("/mcp", headers=session)


async def cut_off_then_resumed(
    caller: httpx2.AsyncClient, resumer: httpx2.AsyncClient, session: dict[str, str]
) -> list[SseEvent]:
    """Call `poll__test_reconnection` with `caller` (the upstream closes the stream mid-call, and the hub its
    client's), resume with `resumer`, check the result arrives there; the events before the close."""
    request = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "poll__test_reconnection"}}
    events = await call_until_closed(caller, session, request)
    assert not any(event.data and json.loads(event.data).get("id") == 9 for event in events)  # closed before
    last = [event.id for event in events if event.id][-1]
    assert last is not None
    replayed = await resume(resumer, session, last, 9)
    assert replayed[-1]["result"]["content"][0]["text"] == "Reconnection test completed"
    return events


async def call_until_closed(
    http: httpx2.AsyncClient, session: dict[str, str], request: dict[str, Any]
) -> list[SseEvent]:
    """Every event of the POST's stream until the server closes it."""
    with anyio.fail_after(20):
        async with http.stream("POST", "/mcp", json=request, headers={**MCP_HEADERS, **session}) as response:
            assert response.status_code == 200
            return [event async for event in sse_events(response)]


async def test_a_resumed_stream_replays_its_own_session_only(gateway: Gateway) -> None:
    """Request ids repeat across sessions (the SDK's stream ids): one shared store would mix their events."""
    async with gateway.http(FULL_KEY) as http:
        first, second = await open_session(http), await open_session(http)
        first_events = await call(http, first, progress_call(5, "first", steps=2))
        await call(http, second, progress_call(5, "second", steps=1))
        first_priming = first_events[0].id
        assert first_priming is not None
        replayed = await resume(http, first, first_priming, 5)
        assert [m["params"]["progressToken"] for m in replayed[:-1]] == ["first", "first"]
        assert replayed[-1]["result"]["content"][0]["text"] == "done after 2 steps"
        for session in (first, second):
            await http.delete("/mcp", headers=session)


async def test_each_session_store_is_dropped_when_the_session_ends(gateway: Gateway) -> None:
    manager = gateway.hub._manager
    assert manager is not None and manager.event_stores is not None
    stores = manager.event_stores
    before = stores.sessions
    async with gateway.http(FULL_KEY) as http:
        session = await open_session(http)
        assert stores.sessions == before + 1
        assert (await http.delete("/mcp", headers=session)).status_code == 200
    assert stores.sessions == before


async def test_resumption_can_be_switched_off(tmp_path: Any) -> None:
    settings = hub_settings(tmp_path, {"fx": fixture_server()}, mcp={"resume": {"enabled": False}})
    async with serving(settings) as gateway, gateway.http(FULL_KEY) as http:
        session = await open_session(http)
        events = await call(http, session, progress_call(1, "tok", steps=1))
        assert all(event.id is None and event.data for event in events)
        await http.delete("/mcp", headers=session)


def _message(text: str) -> types.JSONRPCMessage:
    return types.JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"data": text})


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), max_size=40),
    max_events=st.integers(min_value=1, max_value=10),
    max_bytes=st.integers(min_value=200, max_value=2000),
)
async def test_a_store_keeps_the_newest_events_within_both_bounds(
    sizes: list[int], max_events: int, max_bytes: int
) -> None:
    store = SessionEventStore(max_events, max_bytes)
    ids = [await store.store_event("s", _message("x" * size)) for size in sizes]
    assert store.events <= max_events
    assert store.bytes <= max_bytes or store.events == 1  # one event larger than the bound is still kept
    replayed: list[str] = []

    async def collect(event: Any) -> None:
        replayed.append(event.event_id)

    kept = ids[len(ids) - store.events :]
    if kept:
        assert await store.replay_events_after(kept[0], collect) == "s"
        assert replayed == kept[1:]
    if len(ids) > len(kept):  # a dropped event cannot be resumed from
        assert await store.replay_events_after(ids[0], collect) is None


async def test_a_store_replays_only_the_stream_of_the_last_event() -> None:
    store = SessionEventStore(100, 100_000)
    priming = await store.store_event("a", None)
    await store.store_event("b", _message("other stream"))
    mine = await store.store_event("a", _message("mine"))
    replayed: list[str | None] = []

    async def collect(event: Any) -> None:
        replayed.append(event.event_id)

    assert await store.replay_events_after(priming, collect) == "a"
    assert replayed == [mine]
    assert await store.replay_events_after("not-a-number", collect) is None
    assert await store.replay_events_after("999", collect) is None
