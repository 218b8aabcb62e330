"""Every upstream is served: optional methods it lacks count as empty, and one invalid tool is skipped, not the server.

The upstream is `tests/servers/bare_server.py`, a low-level-SDK server that declares `resources` but answers
`resources/templates/list` with -32601 and declares no prompts nor completions.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from tests.mcp_hub.conftest import (
    ADMIN_KEY,
    FULL_KEY,
    MODES,
    Gateway,
    fixture_over_http,
    hub_settings,
    serving,
)

pytestmark = pytest.mark.anyio

BARE = Path(__file__).parents[1] / "servers" / "bare_server.py"


def bare_server(*args: str) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(BARE), *args]}


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    async with fixture_over_http(script=BARE) as url:
        servers = {
            "bare": bare_server(),
            "bare-web": {"url": url},
            "broken": bare_server("--bad-tools"),
            "claims": {**bare_server("--overclaim"), "protocol": "legacy"},  # logging/setLevel is 2025-era
        }
        async with serving(hub_settings(tmp_path_factory.mktemp("optional"), servers)) as started:
            yield started


async def admin_view(gateway: Gateway) -> dict[str, dict[str, Any]]:
    async with gateway.http(ADMIN_KEY) as admin:
        response = await admin.get("/admin/mcp/servers")
    assert response.status_code == 200
    return {server["name"]: server for server in response.json()["data"]}


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("server", ["bare", "bare-web"])  # over stdio and over Streamable HTTP
async def test_a_server_without_a_templates_handler_is_served(gateway: Gateway, server: str, mode: str) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert f"{server}__add" in names and f"{server}__echo" in names
        assert text(await client.call_tool(f"{server}__add", {"a": 2, "b": 40})) == "42"
        resources = [r.uri for r in (await client.list_resources()).resources]
        assert f"isthmus://{server}/bare://readme" in resources
        read = await client.read_resource(f"isthmus://{server}/bare://readme")
        assert isinstance(read.contents[0], types.TextResourceContents) and read.contents[0].text == "a bare server"
        templates = (await client.list_resource_templates()).resource_templates
        assert not [t for t in templates if t.uri_template.startswith(f"isthmus://{server}/")]


async def test_the_admin_view_shows_the_unsupported_method(gateway: Gateway) -> None:
    servers = await admin_view(gateway)
    for name in ("bare", "bare-web"):
        assert servers[name]["state"] == "ready" and servers[name]["tools"] == ["add", "echo"]
        assert servers[name]["resources"] == 1 and servers[name]["resource_templates"] == 0
        unsupported = servers[name]["unsupported"]
        assert [entry["method"] for entry in unsupported] == ["resources/templates/list"]
        assert str(types.METHOD_NOT_FOUND) in unsupported[0]["error"]
        assert servers[name]["skipped_tools"] == []


async def test_undeclared_listings_are_not_asked_for(gateway: Gateway) -> None:
    # The bare server declares no prompts: asking would be an error the admin view would show.
    servers = await admin_view(gateway)
    assert "prompts/list" not in [entry["method"] for entry in servers["bare"]["unsupported"]]
    assert servers["bare"]["prompts"] == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_completion_for_a_server_without_completions_is_empty(gateway: Gateway, mode: str) -> None:
    ref = types.ResourceTemplateReference(type="ref/resource", uri="isthmus://bare/bare://notes/{name}")
    async with gateway.client(FULL_KEY, mode) as client:
        result = await client.complete(ref, {"name": "name", "value": "a"})
    assert result.completion.values == []


async def test_a_server_with_invalid_tool_schemas_serves_the_rest(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, "legacy") as client:
        names = [t.name for t in (await client.list_tools()).tools if t.name.startswith("broken__")]
        assert names == ["broken__add", "broken__echo"]
        assert text(await client.call_tool("broken__echo", {"text": "still here"})) == "still here"
    servers = await admin_view(gateway)
    assert servers["broken"]["state"] == "ready" and servers["broken"]["tools"] == ["add", "echo"]
    skipped = {entry["name"]: entry["error"] for entry in servers["broken"]["skipped_tools"]}
    assert set(skipped) == {"bad_type", "not_an_object"}
    assert skipped["bad_type"].startswith("inputSchema is not a valid JSON Schema at properties/n/type")
    assert skipped["not_an_object"].startswith("inputSchema:")


@pytest.mark.parametrize("mode", MODES)
async def test_methods_a_server_declares_but_lacks_are_empty_and_shown(gateway: Gateway, mode: str) -> None:
    upstream = gateway.hub.upstreams["claims"]
    assert upstream.health.state == "ready"
    # The hub asked for every log level when it connected (mcp_hub/relay): answered -32601, no error for anyone.
    ref = types.ResourceTemplateReference(type="ref/resource", uri="isthmus://claims/bare://notes/{name}")
    async with gateway.client(FULL_KEY, mode) as client:
        assert (await client.complete(ref, {"name": "name", "value": "a"})).completion.values == []
    unsupported = (await admin_view(gateway))["claims"]["unsupported"]
    assert [entry["method"] for entry in unsupported] == [
        "completion/complete",
        "logging/setLevel",
        "resources/templates/list",
    ]
    assert all(f"error {types.METHOD_NOT_FOUND}" in entry["error"] for entry in unsupported)
