"""`/mcp` and `/mcp/{server}` answer the same with the direct dispatch on and off (`create_app(direct=...)`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.mcp_hub.conftest import FULL_KEY, hub_settings, serving

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
CLIENT = {"name": "t", "version": "1"}
ACCEPT = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
VARYING_HEADERS = {"date", "mcp-session-id", "content-length"}


def rpc(method: str, params: dict[str, Any], rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def requests() -> list[tuple[str, str, dict[str, str], Any]]:
    auth = {"authorization": f"Bearer {FULL_KEY}", **ACCEPT}
    modern = {**auth, "mcp-protocol-version": MODERN}
    call = rpc("tools/call", {"name": "web__echo", "arguments": {"text": "hi"}, "_meta": META})
    return [
        ("POST", "/mcp", {**modern, "mcp-method": "tools/list"}, rpc("tools/list", {"_meta": META})),
        ("POST", "/mcp", {**modern, "mcp-method": "tools/call", "mcp-name": "web__echo"}, call),
        ("POST", "/mcp/web", {**modern, "mcp-method": "tools/list"}, rpc("tools/list", {"_meta": META})),
        ("POST", "/mcp/nope", {**modern, "mcp-method": "tools/list"}, rpc("tools/list", {"_meta": META})),
        ("POST", "/mcp", {**ACCEPT, "mcp-protocol-version": MODERN}, rpc("tools/list", {"_meta": META})),
        ("POST", "/mcp", modern, b"{not json"),
        (
            "POST",
            "/mcp",
            auth,
            rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT}),
        ),
        ("DELETE", "/mcp", modern, None),
        ("PUT", "/mcp/web", modern, None),
    ]


async def answers(tmp_path: Path, url: str, direct: bool) -> list[dict[str, Any]]:
    settings = hub_settings(tmp_path, {"web": {"url": url}})
    got = []
    async with serving(settings, direct=direct) as gateway, httpx2.AsyncClient(base_url=gateway.base_url) as http:
        for method, path, headers, body in requests():
            content = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
            response = await http.request(method, path, headers=headers, content=content)
            text = response.text
            headers_seen = {k: v for k, v in response.headers.items() if k not in VARYING_HEADERS}
            got.append({"status": response.status_code, "headers": headers_seen, "body": text})
    return got


async def test_the_mcp_endpoint_answers_the_same_with_the_direct_dispatch(
    tmp_path: Path, fixture_http_url: str
) -> None:
    direct = await answers(tmp_path / "direct", fixture_http_url, True)
    starlette = await answers(tmp_path / "starlette", fixture_http_url, False)
    assert direct == starlette
    assert [answer["status"] for answer in direct] == [200, 200, 200, 404, 401, 400, 200, 405, 405]
    assert '"hi"' in direct[1]["body"]
