"""Errors reach clients as the upstream gave them: a resource the server lacks is a JSON-RPC error with the URI the
client asked for in `data.uri` (SEP-2164), whether the upstream or the hub itself found it missing."""

from __future__ import annotations

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import FULL_KEY, MODES, TIME_KEY, Gateway

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("upstream", ["fx", "web"])
async def test_an_upstream_s_missing_resource_keeps_its_code_and_names_the_uri_the_client_asked(
    gateway: Gateway, mode: str, upstream: str
) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        with pytest.raises(MCPError) as missing:
            await client.read_resource(f"isthmus://{upstream}/demo://nowhere")
    assert missing.value.code == types.INVALID_PARAMS
    assert missing.value.data["uri"] == f"isthmus://{upstream}/demo://nowhere"
    async with gateway.client(FULL_KEY, mode, server=upstream) as client:
        with pytest.raises(MCPError) as missing:
            await client.read_resource("demo://nowhere")
    assert missing.value.code == types.INVALID_PARAMS
    assert missing.value.data["uri"] == "demo://nowhere"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("uri", ["isthmus://nosuchserver/demo://readme", "isthmus://fx/demo://readme"])
async def test_a_resource_the_hub_cannot_find_or_hides_names_the_uri(gateway: Gateway, mode: str, uri: str) -> None:
    async with gateway.client(TIME_KEY, mode) as client:
        with pytest.raises(MCPError) as missing:
            await client.read_resource(uri)
    assert missing.value.code == types.INVALID_PARAMS
    assert missing.value.data == {"uri": uri}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("upstream", ["fx", "web"])
async def test_a_missing_client_capability_is_a_json_rpc_error_not_a_tool_error(
    gateway: Gateway, mode: str, upstream: str
) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool(f"{upstream}__needs_capability", {"capability": "x-hub-test"})
    assert refused.value.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert refused.value.data == {"requiredCapabilities": {"experimental": {"x-hub-test": {}}}}
    rows = await gateway.audit(key="full", target=f"{upstream}/needs_capability")
    assert rows and {row["details"]["outcome"] for row in rows} == {"upstream_error"}


async def test_a_missing_client_capability_is_http_400_for_a_2026_client(gateway: Gateway) -> None:
    request = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {
            "name": "fx__needs_capability",
            "arguments": {"capability": "x-hub-test"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "fx__needs_capability",
    }
    async with gateway.http(FULL_KEY) as http:
        response = await http.post("/mcp", json=request, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == types.MISSING_REQUIRED_CLIENT_CAPABILITY
