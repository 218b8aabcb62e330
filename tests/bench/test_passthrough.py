"""The floor forwards bodies, MCP session headers and streams unchanged, choosing the upstream by path."""

from __future__ import annotations

import aiohttp
import anyio
import httpx2
import pytest

from bench.passthrough import PassThrough
from bench.scenarios import chat_body

pytestmark = pytest.mark.anyio


async def test_llm_and_mcp_requests_reach_their_own_upstream(llm_mock: str, mcp_mock: str) -> None:
    app = PassThrough(llm_mock, mcp_mock)
    async with aiohttp.ClientSession() as session:
        app.session = session
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://floor") as http:
            with anyio.fail_after(10):
                chat = await http.post("/v1/chat/completions", content=chat_body("m1", stream=False))
                stream = await http.post("/v1/chat/completions", content=chat_body("m1", stream=True))
                init = {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                }
                opened = await http.post(
                    "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
                )
                listed = await http.post(
                    "/mcp",
                    json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                    headers={"mcp-session-id": opened.headers["mcp-session-id"]},
                )
    assert chat.json()["model"] == "m1"
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.text.count("data: ") == 8 and stream.text.endswith("data: [DONE]\n\n")
    assert [tool["name"] for tool in listed.json()["result"]["tools"]] == ["echo", "add"]
