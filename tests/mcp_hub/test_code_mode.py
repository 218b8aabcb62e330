"""Code Mode through the hub: an SDK client on `/mcp` searches, reads docs and runs programs whose tool calls take
the governed path of direct calls.

The gateway serves the fixture server `fx` over stdio in Code Mode (`code_mode: true`, $0.001 a call) and the
fixture server `web` over Streamable HTTP directly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog, Snapshot
from mcp_hub.codemode import OUTCOME_META, RUN_ID_META, TOOL_CALLS_META
from mcp_hub.errors import CodeModeOnly, UnknownTool
from mcp_hub.listing import CODE_MODE_VIA, code_mode_tools, resolve_tool, tools_to_list
from mcp_hub.toolboxes import ToolboxCache
from tests.mcp_hub.conftest import (
    FULL_KEY,
    LIMITED_KEY,
    METERED_KEY,
    MODES,
    Gateway,
    fixture_server,
    hub_settings,
    serving,
)
from toolpolicy.globs import GlobSet
from toolpolicy.types import Principal

pytestmark = pytest.mark.anyio

OFF_KEY = "isk-cm-off"
FORCED_KEY = "isk-cm-forced"
EMPTY_KEY = "isk-cm-empty"
META = ["search_tools", "get_tool_docs", "run_code"]


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, fixture_http_url: str) -> AsyncIterator[Gateway]:
    servers = {
        "fx": fixture_server(timeout=5, code_mode=True, cost_per_call_usd=0.001),
        "web": {"url": fixture_http_url},
    }
    keys = (
        {"name": "cm-off", "value": OFF_KEY, "code_mode": False, "mcp": {"fx": ["*"], "web": ["echo"]}},
        {"name": "cm-forced", "value": FORCED_KEY, "code_mode": True, "mcp": {"web": ["add", "echo"]}},
        {"name": "cm-empty", "value": EMPTY_KEY, "mcp": {"fx": ["no_such_tool"], "web": ["echo"]}},
    )
    limits = {"execution_timeout": 5, "wall_timeout": 20, "workers": 2, "warm_workers": 1}
    settings = hub_settings(tmp_path_factory.mktemp("code-mode"), servers, keys=keys, code_mode=limits)
    async with serving(settings) as started:
        yield started


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def run_value(result: types.CallToolResult) -> Any:
    """The JSON value a successful run returned."""
    text = text_of(result)
    assert not result.is_error, text
    head, _, rest = text.partition("\n")
    assert head == "Result:", text
    return json.loads(rest.split("\n\n", 1)[0])


async def run(client: Client, code: str) -> types.CallToolResult:
    with anyio.fail_after(30):
        return await client.call_tool("run_code", {"code": code})


async def tool_records(gateway: Gateway, run_id: str, **filters: Any) -> list[dict[str, Any]]:
    return [row for row in await gateway.audit(**filters) if row["details"].get("run_id") == run_id]


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_searches_reads_docs_and_runs_a_program_combining_two_tools(gateway: Gateway, mode: str) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert names[:3] == META
        assert names[3:] and all(name.startswith("web__") for name in names[3:])  # fx is served through Code Mode

        found = await client.call_tool("search_tools", {"query": "add two integers", "limit": 3})
        assert not found.is_error and "fx.add(a: int, b: int)" in text_of(found)
        stubs = await client.call_tool("get_tool_docs", {"names": ["fx.add", "fx.weather"]})
        assert "async def add(a: int, b: int)" in text_of(stubs)
        assert "async def weather(city: str)" in text_of(stubs)

        result = await run(
            client,
            "total = await fx.add(a=20, b=22)\n"
            "report = await fx.weather(city='Oslo')\n"
            "{'sum': total['result'], 'city': report['city'], 'plus_temp': total['result'] + report['temp_c']}",
        )
    assert run_value(result) == {"sum": 42, "city": "Oslo", "plus_temp": 63.5}
    assert result.meta is not None
    assert result.meta[TOOL_CALLS_META] == 2 and result.meta[OUTCOME_META] == "ok"


async def test_calls_from_code_are_audited_with_via_and_the_run_id(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, "2026-07-28") as client:
        result = await run(client, "a = await fx.add(a=1, b=2)\nb = await fx.echo(text='hi')\n[a, b]")
    assert not result.is_error, text_of(result)
    assert result.meta is not None
    run_id = result.meta[RUN_ID_META]
    calls = await tool_records(gateway, run_id, target_prefix="fx/")
    assert sorted(row["target"] for row in calls) == ["fx/add", "fx/echo"]
    for row in calls:
        assert row["details"]["via"] == "code_mode" and row["details"]["outcome"] == "ok"
        assert row["key_name"] == "full" and row["decision"] == "allow"
        assert float(row["cost_usd"]) == pytest.approx(0.001)  # fx's cost_per_call_usd, charged per call
    [run_record] = await tool_records(gateway, run_id, target="code_mode/run_code")
    assert run_record["details"]["outcome"] == "ok" and run_record["details"]["tool_calls"] == 2
    assert run_record["key_name"] == "full" and "via" not in run_record["details"]


async def test_asyncio_gather_runs_two_tool_calls_of_one_program(gateway: Gateway) -> None:
    code = (
        "import asyncio\n"
        "first, second = await asyncio.gather(fx.add(a=3, b=4), fx.weather(city='Rome'))\n"
        "[first['result'], second['city']]"
    )
    async with gateway.client(FULL_KEY, "legacy") as client:
        result = await run(client, code)
    assert run_value(result) == [7, "Rome"]
    assert result.meta is not None
    calls = await tool_records(gateway, result.meta[RUN_ID_META], target_prefix="fx/")
    assert sorted(row["target"] for row in calls) == ["fx/add", "fx/weather"]
    assert len({row["request_id"] for row in calls}) == 2  # each call holds its own reservations


async def test_a_rate_limit_hit_inside_code_is_an_exception_the_program_catches(gateway: Gateway) -> None:
    code = (
        "outcomes = []\n"
        "for n in range(3):\n"
        "    try:\n"
        "        outcomes.append((await fx.add(a=n, b=1))['result'])\n"
        "    except RuntimeError as exc:\n"
        "        outcomes.append(str(exc))\n"
        "outcomes"
    )
    async with gateway.client(METERED_KEY, "2026-07-28") as client:  # at most 2 calls a day to each server
        result = await run(client, code)
    first, second, refused = run_value(result)
    assert (first, second) == (1, 2)
    assert refused.startswith("fx.add() failed: Tool call refused:") and "try again in" in refused
    assert result.meta is not None
    records = await tool_records(gateway, result.meta[RUN_ID_META], target="fx/add")
    assert sorted(row["decision"] for row in records) == ["allow", "allow", "deny"]
    [denied] = [row for row in records if row["decision"] == "deny"]
    assert denied["reason"] == "limit_exceeded" and denied["details"]["via"] == "code_mode"


ESCAPES = {
    "attribute": ("await fx.slow(seconds=0, marker=M)", "AttributeError"),
    "alias": ("t = fx\nawait t.slow(seconds=0, marker=M)", "AttributeError"),
    "import alias": ("import fx as f\nawait f.slow(seconds=0, marker=M)", "AttributeError"),
    "getattr": ("await getattr(fx, 'slow')(seconds=0, marker=M)", "AttributeError"),
    "string": ("await getattr(fx, 'sl' + 'ow')(seconds=0, marker=M)", "AttributeError"),
    "from import": ("from fx import slow\nawait slow(seconds=0, marker=M)", "ImportError"),
    "hub name": ("await fx__slow(seconds=0, marker=M)", "NameError"),
}


async def test_a_tool_outside_the_allowlist_cannot_be_reached_from_code(gateway: Gateway, tmp_path: Path) -> None:
    marker = tmp_path / "slow-was-called"
    async with gateway.client(LIMITED_KEY, "2026-07-28") as client:  # fx: add, echo, get_*
        found = text_of(await client.call_tool("search_tools", {"query": "sleep slow marker", "limit": 50}))
        assert "fx.slow" not in found and "fx (2 tools)" in found  # add and echo only
        docs = await client.call_tool("get_tool_docs", {"names": ["fx.slow"]})
        assert docs.is_error and "Unknown tool" in text_of(docs)
        for how, (attempt, error) in ESCAPES.items():
            result = await run(client, f"M = {str(marker)!r}\n{attempt}")
            assert result.is_error, how
            assert text_of(result).startswith(f"The program raised an exception: {error}:"), (how, text_of(result))
        allowed = await run(client, "(await fx.add(a=1, b=1))['result']")
        assert run_value(allowed) == 2
    assert not marker.exists()  # no attempt reached the upstream
    assert await gateway.audit(key="limited", target="fx/slow") == []
    async with gateway.client(FULL_KEY, "2026-07-28") as client:  # the control: a key that may call it does
        slept = await run(client, f"await fx.slow(seconds=0, marker={str(marker)!r})")
        assert run_value(slept) == {"result": "slept 0.0s"}
    assert marker.read_text() == "started"


async def test_a_key_with_code_mode_off_calls_the_tools_directly(gateway: Gateway) -> None:
    async with gateway.client(OFF_KEY, "legacy") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert "fx__add" in names and "web__echo" in names
        assert not set(META) & set(names)
        assert (await client.call_tool("fx__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
        with pytest.raises(MCPError) as refused:
            await client.call_tool("run_code", {"code": "1"})
        assert refused.value.code == types.INVALID_PARAMS and refused.value.message == "Unknown tool: run_code"


async def test_a_key_can_force_code_mode_on_for_a_server_that_is_not_in_it(gateway: Gateway) -> None:
    async with gateway.client(FORCED_KEY, "2026-07-28") as client:
        tools = (await client.list_tools()).tools
        assert [tool.name for tool in tools] == META
        assert "Modules: web." in (tools[0].description or "")
        result = await run(client, "(await web.add(a=2, b=2))['result'] * 10")
    assert run_value(result) == 40


async def test_a_key_with_no_code_mode_tools_gets_no_meta_tools(gateway: Gateway) -> None:
    async with gateway.client(EMPTY_KEY, "2026-07-28") as client:
        assert [tool.name for tool in (await client.list_tools()).tools] == ["web__echo"]
        result = await client.call_tool("run_code", {"code": "1"})
    assert result.is_error and text_of(result) == "No tools are available to this key through Code Mode right now."


async def test_direct_calls_of_code_mode_tools_are_refused_with_a_pointer_to_run_code(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, "2026-07-28") as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("fx__add", {"a": 1, "b": 1})
    assert refused.value.code == types.INVALID_PARAMS
    assert refused.value.message.startswith("Unknown tool: fx__add (this key uses the tools of MCP server 'fx'")
    [record] = [row for row in await gateway.audit(key="full", target="fx/add") if row["decision"] == "deny"]
    assert record["reason"] == "code_mode_only"


async def test_one_server_endpoints_offer_either_the_meta_tools_or_the_servers_own_tools(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, "legacy", server="fx") as client:
        assert [tool.name for tool in (await client.list_tools()).tools] == META
        assert run_value(await run(client, "(await fx.add(a=5, b=5))['result']")) == 10
        with pytest.raises(MCPError, match="through Code Mode"):
            await client.call_tool("add", {"a": 1, "b": 1})
    async with gateway.client(FULL_KEY, "legacy", server="web") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert "add" in names and not set(META) & set(names)
        with pytest.raises(MCPError, match="Unknown tool: run_code"):
            await client.call_tool("run_code", {"code": "1"})


async def test_the_rest_routes_offer_code_mode_too(gateway: Gateway) -> None:
    async with gateway.http(FULL_KEY) as http:
        listed = (await http.get("/v1/mcp/tools")).json()["data"]
        names = [item["function"]["name"] for item in listed]
        assert names[:3] == META and not any(name.startswith("fx__") for name in names)
        response = await http.post(
            "/v1/mcp/tools/call", json={"name": "run_code", "arguments": {"code": "(await fx.add(a=1, b=6))['result']"}}
        )
    assert response.status_code == 200
    body = response.json()
    assert not body.get("isError") and body["content"][0]["text"].startswith("Result:\n7")


async def test_toolboxes_are_cached_per_key_and_readiness_reports_the_sandbox(gateway: Gateway) -> None:
    cache = gateway.hub.tools.toolboxes
    async with gateway.client(FULL_KEY, "2026-07-28") as client:
        await client.list_tools()
        built = cache.built
        await client.list_tools()
        await client.call_tool("search_tools", {"query": "echo"})
        await client.call_tool("get_tool_docs", {"names": ["fx.echo"]})
    assert cache.built == built
    async with gateway.http() as http:
        ready = (await http.get("/ready")).json()
    assert ready["mcp"]["code_mode"] == {"state": "ready", "last_error": None, "servers": ["fx"]}


def caller(mcp: dict[str, list[str]], code_mode: bool | None = None, *, server: str | None = None) -> Caller:
    grants = {name: GlobSet.of(globs) for name, globs in mcp.items()}
    principal = Principal(key_id="k1", key_name="k", mcp=grants, code_mode=code_mode)
    return Caller(principal, "secret", server, code_mode_servers=frozenset({"docs"}))


def small_catalog() -> Catalog:
    catalog = Catalog()
    schema = {"type": "object"}
    catalog.update("docs", Snapshot(tools=(types.Tool(name="search", input_schema=schema),)))
    catalog.update("time", Snapshot(tools=(types.Tool(name="now", input_schema=schema),)))
    return catalog


def test_the_keys_code_mode_overrides_the_servers_and_each_way_refuses_the_others_calls() -> None:
    catalog = small_catalog()
    everything = {"docs": ["*"], "time": ["*"]}
    following = caller(everything)
    assert [t.name for t in tools_to_list(following, catalog)] == ["time__now"]
    assert [e.exposed for e in code_mode_tools(following, catalog)] == ["docs__search"]
    assert resolve_tool(following, catalog, "docs__search", via=CODE_MODE_VIA).name == "search"
    with pytest.raises(CodeModeOnly):
        resolve_tool(following, catalog, "docs__search")
    with pytest.raises(UnknownTool) as unreachable:
        resolve_tool(following, catalog, "time__now", via=CODE_MODE_VIA)
    assert not isinstance(unreachable.value, CodeModeOnly)
    assert [t.name for t in tools_to_list(caller(everything, code_mode=False), catalog)] == [
        "docs__search",
        "time__now",
    ]
    assert [e.exposed for e in code_mode_tools(caller(everything, code_mode=True), catalog)] == [
        "docs__search",
        "time__now",
    ]
    assert code_mode_tools(caller({"time": ["*"]}), catalog) == []  # only what the allowlist grants
    assert not following.same_grants(caller(everything, code_mode=True).principal)  # a switch is a list change


def test_toolboxes_are_cached_per_grants_and_rebuilt_when_the_catalogs_tools_change() -> None:
    catalog = small_catalog()
    cache = ToolboxCache(catalog)
    first = cache.get(caller({"docs": ["*"]}))
    assert [tool.qualified for tool in first.tools] == ["docs.search"]
    assert cache.get(caller({"docs": ["*"]})) is first
    assert len(cache.get(caller({"docs": ["nothing"]}))) == 0 and cache.built == 2
    catalog.update("docs", Snapshot(tools=(types.Tool(name="fetch", input_schema={"type": "object"}),)))
    assert [tool.qualified for tool in cache.get(caller({"docs": ["*"]})).tools] == ["docs.fetch"]
    catalog.update("time", Snapshot(tools=(types.Tool(name="now", input_schema={"type": "object"}),)))
    assert cache.get(caller({"docs": ["*"]})).tools[0].qualified == "docs.fetch" and cache.built == 3
