"""The fast path's exchange over a real server: a client that goes away cancels the call (upstream too, audited as
cancelled), and a call that runs silent past the ping interval is answered as an event stream that pings meanwhile.

A real uvicorn server and a raw TCP client, as in `tests/mcp_hub/test_disconnect.py`; the counter checks that the
fast path, not the SDK, served each request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from mcp.shared.transport_context import TransportContext

import mcp_hub.fastpath
import mcp_hub.fastpath.exchange
from tests.mcp_hub.conftest import FULL_KEY, Gateway, fixture_server, hub_settings, serving

pytestmark = pytest.mark.anyio

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    settings = hub_settings(tmp_path_factory.mktemp("exchange"), {"fx": fixture_server(timeout=120)})
    async with serving(settings) as started:
        yield started


@pytest.fixture
def fast_served(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many requests the fast path has served (one element, counted up)."""
    count = [0]
    serve = mcp_hub.fastpath._serve

    async def counted(*args: Any) -> None:
        count[0] += 1
        await serve(*args)

    monkeypatch.setattr(mcp_hub.fastpath, "_serve", counted)
    return count


def raw_call(host: str, arguments: dict[str, Any], request_id: str) -> bytes:
    params = {"name": "fx__slow", "arguments": arguments, "_meta": META}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).encode()
    head = (
        "POST /mcp HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Authorization: Bearer {FULL_KEY}\r\n"
        "Accept: application/json, text/event-stream\r\n"
        "Content-Type: application/json\r\n"
        "MCP-Protocol-Version: 2026-07-28\r\n"
        "Mcp-Method: tools/call\r\n"
        "Mcp-Name: fx__slow\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode() + body


async def test_a_client_that_goes_away_cancels_the_call_upstream_too(
    gateway: Gateway, tmp_path: Path, fast_served: list[int]
) -> None:
    marker = tmp_path / "marker"
    request_id = uuid.uuid4().hex
    address = urlsplit(gateway.base_url)
    assert address.hostname is not None and address.port is not None
    client = await anyio.connect_tcp(address.hostname, address.port)
    await client.send(raw_call(address.netloc, {"seconds": 100, "marker": str(marker)}, request_id))
    with anyio.fail_after(15):
        while not marker.exists():
            await anyio.sleep(0.02)
    await client.aclose()

    with anyio.fail_after(15):
        while marker.read_text() != "cancelled":
            await anyio.sleep(0.02)
        while not (records := [r for r in await gateway.audit(target="fx/slow") if r["request_id"] == request_id]):
            await anyio.sleep(0.05)
    assert [(r["status"], r["details"]["outcome"]) for r in records] == [(499, "cancelled")]
    assert fast_served == [1]


async def test_a_silent_call_becomes_an_event_stream_that_pings(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, fast_served: list[int]
) -> None:
    # The tool sleeps 40 intervals: the first ping commits the stream long before the result can.
    monkeypatch.setattr(mcp_hub.fastpath.exchange, "PING_INTERVAL", 0.02)
    address = urlsplit(gateway.base_url)
    assert address.hostname is not None and address.port is not None
    client = await anyio.connect_tcp(address.hostname, address.port)
    async with client:
        await client.send(raw_call(address.netloc, {"seconds": 0.8}, uuid.uuid4().hex))
        received = b""
        with anyio.fail_after(15):
            while True:
                try:
                    received += await client.receive()
                except anyio.EndOfStream:
                    break
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-type: text/event-stream" in head.lower()
    assert b": ping" in body
    events = [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")]
    assert [event["result"]["content"][0]["text"] for event in events] == ["slept 0.8s"]
    assert fast_served == [1]


def bare_exchange(sent: list[Any]) -> mcp_hub.fastpath.exchange.Exchange:
    async def send(message: Any) -> None:
        sent.append(message)

    return mcp_hub.fastpath.exchange.Exchange(headers=None, request_id=1, message_metadata=None, send=send)


def test_the_transport_carries_the_requests_headers_and_no_back_channel() -> None:
    headers = {"x-request-id": "r-1"}
    exchange = mcp_hub.fastpath.exchange.Exchange(headers=headers, request_id=1, message_metadata=None, send=no_send)
    expected = TransportContext(kind="streamable-http", can_send_request=False, headers=headers)
    assert exchange.transport == expected and exchange.transport is exchange.transport


async def no_send(message: Any) -> None:
    raise AssertionError(f"nothing is written here: {message}")


async def test_a_call_answered_before_the_watch_delay_starts_no_watcher() -> None:
    received: list[str] = []

    async def receive() -> dict[str, Any]:
        received.append("receive")
        await anyio.sleep_forever()
        raise AssertionError

    with anyio.CancelScope() as handler:
        watcher = bare_exchange([]).start_watching(receive, handler)
        watcher.cancel()
    await anyio.sleep(mcp_hub.fastpath.exchange.WATCH_DELAY * 2)
    await mcp_hub.fastpath.exchange.settle(watcher)
    assert watcher.task is None and received == [] and not handler.cancel_called


async def test_a_client_gone_during_the_watch_delay_cancels_the_call_once_it_is_over() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    with anyio.fail_after(15), anyio.CancelScope() as handler:
        watcher = bare_exchange([]).start_watching(receive, handler)
        try:
            await anyio.sleep_forever()
        finally:
            watcher.cancel()
    await mcp_hub.fastpath.exchange.settle(watcher)
    assert handler.cancelled_caught and watcher.task is not None


@pytest.mark.parametrize("outcome", [{"content": [], "isError": False}, ValueError("no such tool")])
async def test_a_json_answer_says_its_body_follows_and_sends_it_next(outcome: dict[str, Any] | Exception) -> None:
    sent: list[Any] = []
    await bare_exchange(sent).finish(outcome)
    start, body = sent
    assert start["type"] == "http.response.start" and start[mcp_hub.fastpath.exchange.BODY_FOLLOWS] is True
    assert body["type"] == "http.response.body" and not body.get("more_body", False)
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()


async def test_an_event_streams_head_says_its_first_chunk_follows_and_sends_it_next() -> None:
    sent: list[Any] = []
    exchange = bare_exchange(sent)
    chunk = b"event: message\r\ndata: {}\r\n\r\n"
    await exchange._write(chunk)
    await exchange._write(chunk)
    start, first, second = sent
    assert start["type"] == "http.response.start" and start[mcp_hub.fastpath.exchange.BODY_FOLLOWS] is True
    assert first == second == {"type": "http.response.body", "body": chunk, "more_body": True}
