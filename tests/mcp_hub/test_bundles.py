"""Bundles (`/mcp/<bundle>`) and tool overrides, with the SDK's Client against a real gateway over real upstreams.

Servers: `fx` (the fixture server over stdio; its `weather` is renamed `forecast` server-wide), `web` (the fixture
server over Streamable HTTP) and `cm` (the fixture server over stdio in Code Mode; its `add` is renamed `plus`).
The bundle `support` selects some of fx's and web's tools, one prompt and one resource, and renames fx's `echo` to
`parrot` there only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import (
    ADMIN_KEY,
    FULL_KEY,
    LIMITED_KEY,
    METERED_KEY,
    MODES,
    Gateway,
    fixture_server,
    hub_settings,
    serving,
)

pytestmark = pytest.mark.anyio

SUPPORT_KEY = "isk-bundle-support"
SUPPORT = "support"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, fixture_http_url: str) -> AsyncIterator[Gateway]:
    weather = {
        "rename": "forecast",
        "description": "Tomorrow's weather for a city.",
        "annotations": {"readOnlyHint": True},
    }
    plus = {"rename": "plus", "description": "Add two integers the operator's way."}
    servers = {
        "fx": fixture_server(timeout=5, overrides={"weather": weather}),
        "web": {"url": fixture_http_url},
        "cm": fixture_server(timeout=5, code_mode=True, overrides={"add": plus}),
    }
    bundle = {
        "description": "What the support team uses.",
        "tools": ["fx__add", "fx__echo", "fx__weather", "web__e*"],
        "prompts": ["fx__greet"],
        "resources": ["isthmus://fx/demo://readme"],
        "overrides": {
            "fx__echo": {
                "rename": "parrot",
                "description": "Say it back.",
                "annotations": {"title": "Parrot", "destructiveHint": False},
            },
            "fx__weather": {"description": "The support desk's weather."},
        },
    }
    keys = ({"name": "support", "value": SUPPORT_KEY, "mcp": {"fx": ["add", "weather", "fail"], "web": ["*"]}},)
    limits = {"execution_timeout": 5, "wall_timeout": 20, "workers": 1, "warm_workers": 1}
    settings = hub_settings(
        tmp_path_factory.mktemp("bundles"), servers, keys=keys, mcp_bundles={SUPPORT: bundle}, code_mode=limits
    )
    async with serving(settings) as started:
        yield started


def names(tools: list[types.Tool]) -> list[str]:
    return [tool.name for tool in tools]


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def listed(client: Client) -> dict[str, types.Tool]:
    return {tool.name: tool for tool in (await client.list_tools()).tools}


@pytest.mark.parametrize("mode", MODES)
async def test_a_bundle_lists_exactly_its_tools_intersected_with_the_keys_allowlist(
    gateway: Gateway, mode: str
) -> None:
    async with gateway.client(FULL_KEY, mode, server=SUPPORT) as client:
        assert list(await listed(client)) == ["fx__add", "fx__forecast", "fx__parrot", "web__echo"]
    async with gateway.client(LIMITED_KEY, mode, server=SUPPORT) as client:  # add, echo, get_* on every server
        assert list(await listed(client)) == ["fx__add", "fx__parrot", "web__echo"]
    async with gateway.client(SUPPORT_KEY, mode, server=SUPPORT) as client:  # fx: add, weather, fail; web: *
        assert list(await listed(client)) == ["fx__add", "fx__forecast", "web__echo"]
    async with gateway.client(SUPPORT_KEY, mode, server=SUPPORT, headers={"x-isthmus-tools": "fx__*"}) as client:
        assert list(await listed(client)) == ["fx__add", "fx__forecast"]  # the header narrows a bundle too


@pytest.mark.parametrize("mode", MODES)
async def test_a_tool_outside_the_bundle_is_refused_there_though_the_key_calls_it_on_mcp(
    gateway: Gateway, mode: str
) -> None:
    async with gateway.client(SUPPORT_KEY, mode) as client:
        failed = await client.call_tool("fx__fail", {"message": "reached"})
        assert failed.is_error and "reached" in text_of(failed)
    async with gateway.client(SUPPORT_KEY, mode, server=SUPPORT) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("fx__fail", {"message": "reached"})
        assert refused.value.code == types.INVALID_PARAMS and refused.value.message == "Unknown tool: fx__fail"
        with pytest.raises(MCPError, match="Unknown tool: web__add"):
            await client.call_tool("web__add", {"a": 1, "b": 2})  # allowed to the key, not selected by the bundle


@pytest.mark.parametrize("mode", MODES)
async def test_a_renamed_tool_lists_with_its_overrides_and_calls_the_original_audited_as_it(
    gateway: Gateway, mode: str
) -> None:
    async with gateway.client(LIMITED_KEY, mode, server=SUPPORT) as client:
        parrot = (await listed(client))["fx__parrot"]
        assert parrot.description == "Say it back."
        assert parrot.annotations is not None and parrot.annotations.title == "Parrot"
        assert parrot.annotations.destructive_hint is False
        assert parrot.annotations.read_only_hint is True  # the upstream's, kept
        said = await client.call_tool("fx__parrot", {"text": f"hello {mode}"})
        assert not said.is_error and text_of(said) == f"hello {mode}"
        with pytest.raises(MCPError, match="Unknown tool: fx__echo"):
            await client.call_tool("fx__echo", {"text": "old name"})  # only the listed name answers
    rows = await gateway.audit(target="fx/echo", key="limited", decision="allow")
    assert any(row["details"]["outcome"] == "ok" for row in rows)
    assert all(row["details"]["tool"] == "echo" and row["details"]["server"] == "fx" for row in rows)
    refused = await gateway.audit(target="fx/echo", key="limited", decision="deny")
    assert refused and {row["reason"] for row in refused} == {"tool_not_found"}


@pytest.mark.parametrize("mode", MODES)
async def test_server_overrides_apply_everywhere_and_bundle_overrides_only_on_the_bundle(
    gateway: Gateway, mode: str
) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        tools = await listed(client)
        assert "fx__weather" not in tools and "fx__parrot" not in tools
        forecast, echo = tools["fx__forecast"], tools["fx__echo"]
        assert forecast.description == "Tomorrow's weather for a city." and forecast.title == "Weather"
        assert forecast.annotations is not None and forecast.annotations.read_only_hint is True
        assert forecast.output_schema is not None and forecast.output_schema["required"] == ["city", "temp_c"]
        assert echo.description == "Return the text unchanged."
        result = await client.call_tool("fx__forecast", {"city": "Oslo"})
        assert result.structured_content == {"city": "Oslo", "temp_c": 21.5}
    async with gateway.client(FULL_KEY, mode, server="fx") as client:
        tools = await listed(client)
        assert "forecast" in tools and "weather" not in tools and "echo" in tools
        assert (await client.call_tool("forecast", {"city": "Rome"})).structured_content == {
            "city": "Rome",
            "temp_c": 21.5,
        }
    async with gateway.client(FULL_KEY, mode, server=SUPPORT) as client:
        forecast = (await listed(client))["fx__forecast"]
        assert forecast.description == "The support desk's weather."  # the bundle's, over the server's
        assert forecast.annotations is not None and forecast.annotations.read_only_hint is True  # the server's
    calls = await gateway.audit(target="fx/weather", key="full")
    assert calls and {row["details"]["tool"] for row in calls} == {"weather"}


async def test_rate_limits_per_server_count_calls_by_the_real_server_through_every_endpoint(gateway: Gateway) -> None:
    # The metered key may make 2 calls a day to fx's tools, whatever endpoint or name they come by.
    async with gateway.client(METERED_KEY, "2026-07-28", server=SUPPORT) as client:
        assert text_of(await client.call_tool("fx__parrot", {"text": "one"})) == "one"
    async with gateway.client(METERED_KEY, "2026-07-28", server="fx") as client:
        assert (await client.call_tool("forecast", {"city": "Oslo"})).structured_content is not None
    async with gateway.client(METERED_KEY, "2026-07-28") as client:
        third = await client.call_tool("fx__add", {"a": 1, "b": 2})
        assert third.is_error and "Tool call refused" in text_of(third)
        web = await client.call_tool("web__echo", {"text": "other server"})
        assert not web.is_error
    rows = await gateway.audit(key="metered", target_prefix="fx/")
    assert sorted(row["target"] for row in rows) == ["fx/add", "fx/echo", "fx/weather"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_bundle_serves_only_the_prompts_and_resources_it_selects(gateway: Gateway, mode: str) -> None:
    async with gateway.client(FULL_KEY, mode, server=SUPPORT) as client:
        assert [p.name for p in (await client.list_prompts()).prompts] == ["fx__greet"]
        greeting = await client.get_prompt("fx__greet", {"person": "Ada"})
        assert "Ada" in greeting.messages[0].content.text  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="Unknown prompt: web__greet"):
            await client.get_prompt("web__greet", {"person": "Ada"})
        assert [r.uri for r in (await client.list_resources()).resources] == ["isthmus://fx/demo://readme"]
        readme = await client.read_resource("isthmus://fx/demo://readme")
        assert readme.contents[0].uri == "isthmus://fx/demo://readme"
        assert (await client.list_resource_templates()).resource_templates == []
        for outside in ("isthmus://web/demo://readme", "isthmus://fx/demo://colors/red"):
            with pytest.raises(MCPError) as refused:
                await client.read_resource(outside)
            assert refused.value.code == types.INVALID_PARAMS
    async with gateway.client(FULL_KEY, mode) as client:  # /mcp still has them all
        assert "web__greet" in [p.name for p in (await client.list_prompts()).prompts]


async def test_code_mode_searches_documents_and_calls_tools_by_their_overridden_names(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, "2026-07-28") as client:
        found = await client.call_tool("search_tools", {"query": "operator's way", "limit": 3})
        assert "cm.plus(a: int, b: int)" in text_of(found) and "cm.add(" not in text_of(found)
        docs = await client.call_tool("get_tool_docs", {"names": ["cm.plus"]})
        assert "async def plus(a: int, b: int)" in text_of(docs) and "operator's way" in text_of(docs)
        with anyio.fail_after(30):
            ran = await client.call_tool("run_code", {"code": "(await cm.plus(a=20, b=22))['result']"})
        assert not ran.is_error and "42" in text_of(ran)
        with anyio.fail_after(30):
            old = await client.call_tool("run_code", {"code": "await cm.add(a=1, b=1)"})
        assert old.is_error
    rows = await gateway.audit(target="cm/add", key="full")
    assert [row["details"]["via"] for row in rows] == ["code_mode"]


async def test_rest_lists_and_calls_a_bundles_tools(gateway: Gateway) -> None:
    async with gateway.http(SUPPORT_KEY) as http:
        listed = await http.get("/v1/mcp/tools", params={"bundle": SUPPORT})
        called = await http.post(
            "/v1/mcp/tools/call", params={"bundle": SUPPORT}, json={"name": "fx__forecast", "arguments": {"city": "X"}}
        )
        outside = await http.post(
            "/v1/mcp/tools/call", params={"bundle": SUPPORT}, json={"name": "fx__fail", "arguments": {}}
        )
        unknown = await http.get("/v1/mcp/tools", params={"bundle": "nope"})
    assert listed.status_code == 200
    functions = {f["function"]["name"]: f["function"] for f in listed.json()["data"]}
    assert list(functions) == ["fx__add", "fx__forecast", "web__echo"]
    assert functions["fx__forecast"]["description"] == "The support desk's weather."
    assert called.status_code == 200 and called.json()["structuredContent"]["city"] == "X"
    assert outside.status_code == 404 and outside.json()["error"]["code"] == "tool_not_found"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "bundle_not_found"


async def test_admin_lists_bundles_and_server_overrides(gateway: Gateway) -> None:
    async with gateway.http(ADMIN_KEY) as admin, gateway.http(FULL_KEY) as virtual:
        bundles = await admin.get("/admin/mcp/bundles")
        servers = await admin.get("/admin/mcp/servers")
        forbidden = await virtual.get("/admin/mcp/bundles")
    assert forbidden.status_code in (401, 403)
    [support] = bundles.json()["data"]
    assert support["name"] == SUPPORT and support["path"] == "/mcp/support"
    assert support["tool_patterns"] == ["fx__add", "fx__echo", "fx__weather", "web__e*"]
    assert support["overrides"]["fx__echo"] == {
        "rename": "parrot",
        "description": "Say it back.",
        "annotations": {"title": "Parrot", "destructiveHint": False},
    }
    assert support["tools"] == [
        {"name": "fx__add", "server": "fx", "tool": "add"},
        {"name": "fx__forecast", "server": "fx", "tool": "weather"},
        {"name": "fx__parrot", "server": "fx", "tool": "echo"},
        {"name": "web__echo", "server": "web", "tool": "echo"},
    ]
    fx: dict[str, Any] = next(s for s in servers.json()["data"] if s["name"] == "fx")
    assert fx["overrides"]["weather"]["rename"] == "forecast"
    assert "weather" in fx["tools"]  # what the upstream lists, by its own names
