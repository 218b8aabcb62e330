"""Bad input on `/mcp` and from upstreams: a precise error for the one client, service as usual for everyone else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.mcp_hub.conftest import ADMIN_KEY, FULL_KEY, Gateway

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def modern_call(method: str, params: dict[str, Any] | None = None, *, version: str = MODERN) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    }
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**(params or {}), "_meta": meta}}


def modern_headers(method: str, **extra: str) -> dict[str, str]:
    return {**ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": method, **extra}


async def still_serving(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, MODERN) as client:
        assert (await client.call_tool("fx__echo", {"text": "ok"})).content[0].text == "ok"  # type: ignore[union-attr]


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer isk-wrong"}, {"x-api-key": "isk-wrong"}])
async def test_a_missing_or_unknown_key_gets_401_with_a_json_rpc_error(
    gateway: Gateway, headers: dict[str, str]
) -> None:
    async with gateway.http(**headers) as http:
        response = await http.post("/mcp", json=modern_call("tools/list"), headers=modern_headers("tools/list"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert "key" in body["error"]["message"]


async def test_x_api_key_is_accepted_like_a_bearer_token(gateway: Gateway) -> None:
    async with gateway.http(**{"x-api-key": FULL_KEY}) as http:
        response = await http.post("/mcp", json=modern_call("tools/list"), headers=modern_headers("tools/list"))
    assert response.status_code == 200
    assert "fx__add" in [t["name"] for t in response.json()["result"]["tools"]]


async def test_an_unknown_server_path_is_404(gateway: Gateway) -> None:
    async with gateway.http(FULL_KEY) as http:
        response = await http.post("/mcp/nope", json=modern_call("tools/list"), headers=modern_headers("tools/list"))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no MCP server named 'nope' is configured on this gateway"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", modern_headers("tools/list"), 400, -32700),
        (json.dumps([modern_call("tools/list")]).encode(), modern_headers("tools/list"), 400, -32600),
        (json.dumps(modern_call("no/such")).encode(), modern_headers("no/such"), 404, -32601),
        (json.dumps(modern_call("tools/list")).encode(), modern_headers("tools/call"), 400, -32020),
        (b"{not json", {**ACCEPT}, 400, -32700),
    ],
    ids=["parse-error", "batch", "unknown-method", "header-mismatch", "legacy-parse-error"],
)
async def test_malformed_json_rpc_gets_a_json_rpc_error(
    gateway: Gateway, body: bytes, headers: dict[str, str], status: int, code: int
) -> None:
    async with gateway.http(FULL_KEY) as http:
        response = await http.post("/mcp", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    await still_serving(gateway)


async def test_an_unsupported_protocol_version_gets_its_own_error(gateway: Gateway) -> None:
    async with gateway.http(FULL_KEY) as http:
        response = await http.post(
            "/mcp",
            json=modern_call("tools/list", version="1999-01-01"),
            headers={**modern_headers("tools/list"), "mcp-protocol-version": "1999-01-01"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32022


async def test_an_oversized_body_is_refused_with_413(gateway: Gateway) -> None:
    big = modern_call("tools/call", {"name": "fx__echo", "arguments": {"text": "x" * 100_000}})
    async with gateway.http(FULL_KEY) as http:
        response = await http.post("/mcp", json=big, headers=modern_headers("tools/call", **{"mcp-name": "fx__echo"}))
    assert response.status_code == 413
    await still_serving(gateway)


async def test_a_foreign_host_header_is_refused(gateway: Gateway) -> None:
    async with gateway.http(FULL_KEY) as http:
        response = await http.post(
            "/mcp", json=modern_call("tools/list"), headers={**modern_headers("tools/list"), "host": "evil.example"}
        )
    assert response.status_code == 421


async def test_a_session_cannot_be_used_with_another_key(gateway: Gateway) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    async with gateway.http(FULL_KEY) as http:
        opened = await http.post("/mcp", json=initialize, headers=ACCEPT)
    session = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with gateway.http("isk-hub-limited") as other:
        hijack = await other.post("/mcp", json=listing, headers={**ACCEPT, "mcp-session-id": session})
    assert hijack.status_code == 404


async def test_stdout_garbage_from_an_upstream_is_discarded_and_the_server_keeps_working(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, MODERN) as client:
        flooded = await client.call_tool("fx__flood", {"lines": 5000, "line_bytes": 200_000})
        assert flooded.content[0].text == "flooded"  # type: ignore[union-attr]
        assert (await client.call_tool("fx__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
    async with gateway.http(ADMIN_KEY) as admin:
        servers = {s["name"]: s for s in (await admin.get("/admin/mcp/servers")).json()["data"]}
    assert servers["fx"]["stdout_noise_lines"] >= 5001
    assert servers["fx"]["state"] == "ready" and servers["fx"]["connects"] == 1
