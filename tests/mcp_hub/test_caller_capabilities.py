"""A 2026-07-28 upstream sees the capabilities of the client it serves, not the hub's (`relay/caller_capabilities.py`).

Upstreams: the asking server (tests/servers/asking_server.py) at 2026-07-28 over stdio (`ask26`) and Streamable HTTP
(`ask26web`), whose `needs_sampling` answers -32021 unless the request declares sampling and `seen_capabilities`
reports what the request declared; and the same server at 2025-11-25 (`ask`), which sees the hub's capabilities.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
import pytest
from hypothesis import given, strategies as st
from mcp.shared.exceptions import MCPError

from mcp_hub.relay.caller_capabilities import common, forwarded
from tests.mcp_hub.conftest import FULL_KEY, Gateway, fixture_over_http, hub_settings, serving
from tests.mcp_hub.test_relay import ASKING, asking_server, sample, text

MODERN = "2026-07-28"
LEGACY = "legacy"
MODERN_UPSTREAMS = ["ask26", "ask26web"]
HUB = {"sampling": {"tools": {}}, "elicitation": {"form": {}, "url": {}}, "roots": {"listChanged": True}}
"""What the hub's upstream connection declares (`UpstreamRelay.client_options`), in wire form."""


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    async with fixture_over_http(script=ASKING) as url:
        servers = {
            "ask": asking_server(),
            "ask26": {**asking_server(), "protocol": "auto"},
            "ask26web": {"url": url, "protocol": "auto"},
        }
        async with serving(hub_settings(tmp_path_factory.mktemp("callercaps"), servers)) as started:
            yield started


async def seen(gateway: Gateway, mode: str, server: str, **callbacks: Any) -> dict[str, Any]:
    async with gateway.client(FULL_KEY, mode, server=server, **callbacks) as client:
        result = await client.call_tool("seen_capabilities", {})
    assert not result.is_error, text(result)
    return dict(json.loads(text(result)))


@pytest.mark.anyio
@pytest.mark.parametrize("mode", [MODERN, LEGACY])
@pytest.mark.parametrize("server", MODERN_UPSTREAMS)
async def test_a_client_without_sampling_gets_the_upstreams_missing_capability_error(
    gateway: Gateway, mode: str, server: str
) -> None:
    assert gateway.hub.upstreams[server].health.protocol_version == MODERN
    async with gateway.client(FULL_KEY, mode, server=server) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("needs_sampling", {})
    assert refused.value.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert refused.value.data == {"requiredCapabilities": {"sampling": {}}}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", [MODERN, LEGACY])
@pytest.mark.parametrize("server", MODERN_UPSTREAMS)
async def test_a_client_with_sampling_gets_the_tool_run(gateway: Gateway, mode: str, server: str) -> None:
    async with gateway.client(FULL_KEY, mode, server=server, sampling_callback=sample) as client:
        result = await client.call_tool("needs_sampling", {})
    assert not result.is_error and text(result) == "sampling declared"


@pytest.mark.anyio
@pytest.mark.parametrize("server", MODERN_UPSTREAMS)
async def test_a_2026_client_without_sampling_gets_http_400(gateway: Gateway, server: str) -> None:
    request = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "needs_sampling",
            "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
            },
        },
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "needs_sampling",
    }
    async with gateway.http(FULL_KEY) as http:
        response = await http.post(f"/mcp/{server}", json=request, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == types.MISSING_REQUIRED_CLIENT_CAPABILITY


@pytest.mark.anyio
@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_the_upstream_sees_what_the_client_declared_within_what_the_hub_relays(
    gateway: Gateway, mode: str
) -> None:
    assert await seen(gateway, mode, "ask26") == {}
    # The SDK client declares both elicitation modes and sampling without tools for these callbacks.
    declared = await seen(gateway, mode, "ask26web", sampling_callback=sample, elicitation_callback=decline)
    assert declared == {"sampling": {}, "elicitation": {"form": {}, "url": {}}}


@pytest.mark.anyio
async def test_a_legacy_upstream_sees_the_hubs_capabilities(gateway: Gateway) -> None:
    # Capabilities are per connection in 2025-11-25; the relay refuses what the calling client lacks (asks.py).
    assert await seen(gateway, MODERN, "ask") == HUB


async def decline(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="decline")


# The intersection itself.


def test_what_the_hub_cannot_relay_is_not_forwarded() -> None:
    client = types.ClientCapabilities(
        sampling=types.SamplingCapability(context=types.SamplingContextCapability()),
        elicitation=types.ElicitationCapability(form=types.FormElicitationCapability()),
        roots=types.RootsCapability(list_changed=False),
        experimental={"x-thing": {}},
        extensions={"io.example/ext": {}},
    )
    assert forwarded(client, HUB, gateway_samples=False) == {
        "sampling": {},
        "elicitation": {"form": {}},
        "roots": {"listChanged": False},
    }
    assert forwarded(None, HUB, gateway_samples=False) == {}


def test_a_server_whose_sampling_the_gateway_answers_is_told_sampling_is_there() -> None:
    assert forwarded(None, HUB, gateway_samples=True) == {"sampling": {"tools": {}}}
    assert forwarded(None, {"roots": {}}, gateway_samples=True) == {}


json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=3)
capability_trees = st.recursive(
    st.dictionaries(st.text(max_size=3), json_leaves, max_size=4),
    lambda inner: st.dictionaries(st.text(max_size=3), inner | json_leaves, max_size=4),
    max_leaves=12,
)


def _within(small: Any, big: Any) -> bool:
    """`small` claims nothing `big` does not: every key is in `big`, flags true only where `big`'s are."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(key in big and _within(value, big[key]) for key, value in small.items())
    if small is True:
        return big is True
    return small is False or small == big


@given(capability_trees, capability_trees)
def test_the_intersection_claims_nothing_either_side_lacks(client: dict[str, Any], hub: dict[str, Any]) -> None:
    shared = common(client, hub)
    assert _within(shared, client) and _within(shared, hub)
    assert common(client, client) == client
