"""2025-era sessions on `/mcp`: a DELETE racing a POST, unknown sessions, and a gateway that restarted under one."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import FULL_KEY, Gateway, Restartable, fixture_server, hub_settings, serving

pytestmark = pytest.mark.anyio

LEGACY = "2025-11-25"
STREAMABLE = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "race", "version": "1"}},
}
ADD = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "fx__add", "arguments": {"a": 1, "b": 2}}}


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    async with serving(hub_settings(tmp_path_factory.mktemp("sessions"), {"fx": fixture_server()})) as started:
        yield started


async def open_session(http: httpx2.AsyncClient) -> dict[str, str]:
    """A new session's headers, the handshake done."""
    opened = await http.post("/mcp", json=INITIALIZE)
    headers = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": LEGACY}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post("/mcp", json=initialized, headers=headers)).status_code == 202
    return headers


def sse_result(body: str) -> Any:
    """The `result` of the JSON-RPC response in an SSE body."""
    for line in body.splitlines():
        if line.startswith("data: ") and line.removeprefix("data: ").strip():
            message = json.loads(line.removeprefix("data: "))
            if "result" in message or "error" in message:
                return message.get("result", message.get("error"))
    raise AssertionError(f"no JSON-RPC response in {body!r}")


async def test_a_post_racing_a_delete_ends_cleanly(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Hold the POST at the one point where the race bit: its response about to start, its message not yet handed
    # to the session. The DELETE comes in right then; the POST goes on once the DELETE is done (or after a second,
    # if the DELETE waits for it).
    reached, release = anyio.Event(), anyio.Event()
    mint = StreamableHTTPServerTransport._mint_priming_event

    async def held(self: StreamableHTTPServerTransport, stream_id: str, protocol_version: str) -> Any:
        if stream_id == str(ADD["id"]):
            reached.set()
            with anyio.fail_after(10):
                await release.wait()
        return await mint(self, stream_id, protocol_version)

    monkeypatch.setattr(StreamableHTTPServerTransport, "_mint_priming_event", held)
    caplog.set_level(logging.WARNING)
    logging.getLogger("uvicorn").addHandler(caplog.handler)  # uvicorn's own loggers do not reach the root
    try:
        statuses: dict[str, int] = {}
        async with gateway.http(FULL_KEY, **STREAMABLE) as http:
            session = await open_session(http)
            deleted = anyio.Event()

            async def post() -> None:
                response = await http.post("/mcp", json=ADD, headers=session)
                statuses["post"] = response.status_code
                assert sse_result(response.text)["structuredContent"] == {"result": 3}

            async def delete() -> None:
                statuses["delete"] = (await http.delete("/mcp", headers=session)).status_code
                deleted.set()

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(post)
                    await reached.wait()
                    tg.start_soon(delete)
                    with anyio.move_on_after(1):
                        await deleted.wait()
                    release.set()
            after = await http.post("/mcp", json={**ADD, "id": 3}, headers=session)
    finally:
        logging.getLogger("uvicorn").removeHandler(caplog.handler)
    assert statuses == {"post": 200, "delete": 200}
    assert after.status_code == 404  # the session is gone for good
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


async def test_a_request_for_an_unknown_session_gets_404(gateway: Gateway) -> None:
    async with gateway.http(FULL_KEY, **STREAMABLE) as http:
        response = await http.post("/mcp", json=ADD, headers={"mcp-session-id": "f" * 32})
    assert response.status_code == 404
    assert response.json()["error"] == {"code": types.INVALID_REQUEST, "message": "Session not found"}


async def test_a_session_of_a_restarted_gateway_fails_at_once(tmp_path: Path) -> None:
    # The SDK client does not re-open a session by itself; it must at least hear why, at once.
    async with anyio.create_task_group() as tg:
        gateway = Restartable(hub_settings(tmp_path, {"fx": fixture_server()}), tg)
        async with (await gateway.start()).client(FULL_KEY, "legacy") as client:
            assert (await client.call_tool("fx__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
            await gateway.stop()
            await gateway.start()
            with anyio.fail_after(10), pytest.raises(MCPError, match="Session not found"):
                await client.call_tool("fx__add", {"a": 1, "b": 1})
        await gateway.stop()
