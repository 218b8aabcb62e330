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
