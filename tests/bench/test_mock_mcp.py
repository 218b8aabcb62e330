"""The hand-rolled MCP mock is a correct MCP server for the official SDK client, in both protocol eras."""

from __future__ import annotations

import json
from typing import Literal

import anyio
import httpx2
import pytest
from mcp import Client

from bench.mock_mcp import MockMcpServer

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
async def test_the_sdk_client_lists_and_calls_tools_in_each_era(
    mcp_mock: str, mcp_server: MockMcpServer, mode: Literal["auto", "legacy"], version: str
) -> None:
    with anyio.fail_after(10):
        async with Client(f"{mcp_mock}/mcp", cache=None, mode=mode) as client:
            assert client.protocol_version == version
            tools = await client.list_tools()
            assert sorted(tool.name for tool in tools.tools) == ["add", "echo"]
            added = await client.call_tool("add", {"a": 2, "b": 3.5})
            echoed = await client.call_tool("echo", {"text": "hello"})
            missing = await client.call_tool("nope", {})
    assert added.structured_content == {"result": 5.5} and not added.is_error
    assert echoed.structured_content == {"result": "hello"}
    assert missing.is_error
    assert mcp_server.calls == 3


async def test_legacy_requests_need_a_session_the_server_opened(mcp_mock: str) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}
    async with httpx2.AsyncClient(base_url=mcp_mock) as http:
        missing = await http.post("/mcp", json=call)
        unknown = await http.post("/mcp", json=call, headers={"mcp-session-id": "made-up"})
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        opened = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": init})
        session = opened.headers["mcp-session-id"]
        notified = await http.post(
            "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers={"mcp-session-id": session}
        )
        called = await http.post("/mcp", json=call, headers={"mcp-session-id": session})
        ended = await http.delete("/mcp", headers={"mcp-session-id": session})
        after = await http.post("/mcp", json=call, headers={"mcp-session-id": session})
        stream = await http.get("/mcp", headers={"mcp-session-id": session})
    assert missing.status_code == 400 and unknown.status_code == 404
    assert opened.json()["result"]["protocolVersion"] == "2025-06-18"
    assert notified.status_code == 202
    assert called.json()["result"]["structuredContent"] == {"result": "x"}
    assert ended.status_code == 200 and after.status_code == 404
    assert stream.status_code == 405


async def test_bad_bodies_get_json_rpc_errors(mcp_mock: str) -> None:
    modern = {"mcp-protocol-version": "2026-07-28"}
    async with httpx2.AsyncClient(base_url=mcp_mock) as http:
        garbage = await http.post("/mcp", content=b"{not json", headers=modern)
        not_rpc = await http.post("/mcp", content=json.dumps([1, 2]).encode(), headers=modern)
        unknown = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "nope/nope"}, headers=modern)
        elsewhere = await http.post("/other", json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == -32700
    assert not_rpc.status_code == 400 and not_rpc.json()["error"]["code"] == -32600
    assert unknown.json()["error"]["code"] == -32601
    assert elsewhere.status_code == 404
