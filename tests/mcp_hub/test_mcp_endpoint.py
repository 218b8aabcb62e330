"""`/mcp` and `/mcp/<server>` with the SDK's Client, in both eras, over real upstreams."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import ADMIN_KEY, FULL_KEY, LIMITED_KEY, METERED_KEY, MODES, TIME_KEY, Gateway
from tests.servers.fixture_server import LONG_NAME

pytestmark = pytest.mark.anyio

LIMITED_TOOLS = ["fx__add", "fx__echo", "time__get_current_time", "web__add", "web__echo"]


async def all_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None:
            return tools


@pytest.mark.parametrize("mode", MODES)
async def test_each_key_lists_exactly_its_allowed_tools_in_a_stable_order(gateway: Gateway, mode: str) -> None:
    async with gateway.client(LIMITED_KEY, mode) as client:
        first = await client.list_tools()
        assert len(first.tools) == 3 and first.next_cursor is not None  # mcp.page_size is 3 here
        assert [t.name for t in await all_tools(client)] == LIMITED_TOOLS
    async with gateway.client(FULL_KEY, mode) as client:
        names = [t.name for t in await all_tools(client)]
    assert {"fx__crash", "web__crash", "time__convert_time", "fx__toggle"} <= set(names)
    assert names == [n for n in names if n.startswith("fx__")] + [n for n in names if not n.startswith("fx__")]
    async with gateway.client(TIME_KEY, mode) as client:
        assert [t.name for t in await all_tools(client)] == ["time__convert_time", "time__get_current_time"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_forbidden_tool_answers_exactly_like_a_missing_one(gateway: Gateway, mode: str) -> None:
    async with gateway.client(LIMITED_KEY, mode) as client:
        with pytest.raises(MCPError) as forbidden:
            await client.call_tool("fx__crash", {})
        with pytest.raises(MCPError) as missing:
            await client.call_tool("fx__no_such_tool", {})
        assert forbidden.value.code == missing.value.code == types.INVALID_PARAMS
        assert forbidden.value.message == "Unknown tool: fx__crash"
        assert missing.value.message == "Unknown tool: fx__no_such_tool"
        assert (await client.call_tool("fx__add", {"a": 2, "b": 3})).structured_content == {"result": 5}
    assert gateway.hub.upstreams["fx"].health.connects == 1  # the crash never reached the server


@pytest.mark.parametrize("mode", MODES)
async def test_calls_reach_stdio_http_and_pypi_upstreams(gateway: Gateway, mode: str) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        assert (await client.call_tool("fx__add", {"a": 2, "b": 40})).structured_content == {"result": 42}
        assert (await client.call_tool("web__echo", {"text": "over http"})).content[0].text == "over http"  # type: ignore[union-attr]
        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert not now.is_error and now.structured_content and now.structured_content["timezone"] == "UTC"
        failed = await client.call_tool("fx__fail", {"message": "boom"})
        assert failed.is_error and "boom" in failed.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_titles_annotations_and_output_schemas_pass_through(gateway: Gateway, mode: str) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        tools = {t.name: t for t in await all_tools(client)}
        add, weather = tools["fx__add"], tools["fx__weather"]
        assert add.title == "Add two integers"
        assert add.annotations is not None and add.annotations.read_only_hint is True
        assert add.annotations.idempotent_hint is True
        assert weather.title == "Weather" and weather.output_schema is not None
        assert weather.output_schema["required"] == ["city", "temp_c"]
        result = await client.call_tool("fx__weather", {"city": "Oslo"})
        assert result.structured_content == {"city": "Oslo", "temp_c": 21.5}
        assert (
            result.meta is None
            or "io.modelcontextprotocol/serverInfo" not in result.meta
            or (result.meta["io.modelcontextprotocol/serverInfo"]["name"] == "isthmus")
        )


@pytest.mark.parametrize("mode", MODES)
async def test_a_name_too_long_for_llm_apis_is_shortened_and_still_routes(gateway: Gateway, mode: str) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        long = [t.name for t in await all_tools(client) if t.name.startswith("fx__a_tool_with")]
        assert len(long) == 1 and len(long[0]) <= 64 and re.match(r"^[A-Za-z0-9_-]+$", long[0])
        assert len(f"fx__{LONG_NAME}") > 64
        assert (await client.call_tool(long[0], {})).content[0].text == "long"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_the_tools_header_narrows_but_never_widens(gateway: Gateway, mode: str) -> None:
    narrow = {"x-isthmus-tools": "fx__e*, time__*"}
    async with gateway.client(FULL_KEY, mode, headers=narrow) as client:
        assert [t.name for t in await all_tools(client)] == ["fx__echo", "time__convert_time", "time__get_current_time"]
        with pytest.raises(MCPError, match="Unknown tool: fx__add"):
            await client.call_tool("fx__add", {"a": 1, "b": 1})
    async with gateway.client(LIMITED_KEY, mode, headers={"x-isthmus-tools": "fx__*"}) as client:
        assert [t.name for t in await all_tools(client)] == ["fx__add", "fx__echo"]


@pytest.mark.parametrize("mode", MODES)
async def test_one_server_endpoint_uses_bare_names(gateway: Gateway, mode: str) -> None:
    async with gateway.client(LIMITED_KEY, mode, server="fx") as client:
        assert [t.name for t in await all_tools(client)] == ["add", "echo"]
        assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {"result": 3}
        with pytest.raises(MCPError, match="Unknown tool: fx__add"):
            await client.call_tool("fx__add", {"a": 1, "b": 2})
    async with gateway.client(TIME_KEY, mode, server="fx") as client:
        assert await all_tools(client) == []


@pytest.mark.parametrize("mode", MODES)
async def test_progress_from_the_upstream_reaches_the_caller(gateway: Gateway, mode: str) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with gateway.client(FULL_KEY, mode) as client:
        result = await client.call_tool("fx__progress", {"steps": 3}, progress_callback=on_progress)
    assert result.content[0].text == "done after 3 steps"  # type: ignore[union-attr]
    assert updates == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]


@pytest.mark.parametrize("mode", MODES)
async def test_a_cancelled_call_is_cancelled_upstream(gateway: Gateway, mode: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    async with gateway.client(FULL_KEY, mode) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "fx__slow", {"seconds": 30, "marker": str(marker)})
            with anyio.fail_after(10):
                while not marker.exists():
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        # fx's timeout is 5 s: seeing "cancelled" sooner proves the cancellation itself travelled upstream.
        with anyio.fail_after(3):
            while marker.read_text() != "cancelled":
                await anyio.sleep(0.02)
        assert (await client.call_tool("fx__echo", {"text": "still here"})).content[0].text == "still here"  # type: ignore[union-attr]
    with anyio.fail_after(5):
        while not [r for r in await gateway.audit(target="fx/slow") if r["details"]["outcome"] == "cancelled"]:
            await anyio.sleep(0.05)


async def test_a_2025_session_hears_tools_list_changed_when_an_upstream_changes(gateway: Gateway) -> None:
    notices: list[Any] = []

    async def on_message(message: Any) -> None:
        notices.append(message)

    async with gateway.client(FULL_KEY, "legacy", message_handler=on_message) as client:
        assert client.server_capabilities.tools is not None and client.server_capabilities.tools.list_changed
        for expected in ("added", "removed"):
            notices.clear()
            assert (await client.call_tool("fx__toggle", {})).content[0].text == expected  # type: ignore[union-attr]
            with anyio.fail_after(5):
                while not any(isinstance(n, types.ToolListChangedNotification) for n in notices):
                    await anyio.sleep(0.02)
            names = [t.name for t in await all_tools(client)]
            assert ("fx__extra" in names) == (expected == "added")


async def test_a_2026_listener_hears_tools_list_changed_when_an_upstream_changes(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, "2026-07-28") as client:
        async with client.listen(tools_list_changed=True) as subscription:
            for expected in ("added", "removed"):
                assert (await client.call_tool("fx__toggle", {})).content[0].text == expected  # type: ignore[union-attr]
                with anyio.fail_after(5):
                    event = await subscription.__anext__()
                assert type(event).__name__ == "ToolsListChanged"
                names = [t.name for t in await all_tools(client)]
                assert ("fx__extra" in names) == (expected == "added")


async def test_an_allowlist_change_reaches_a_connected_client(gateway: Gateway) -> None:
    async with gateway.http(ADMIN_KEY) as admin, gateway.client(TIME_KEY, "2026-07-28") as client:
        async with client.listen(tools_list_changed=True) as subscription:
            patched = await admin.patch("/admin/keys/time-only", json={"mcp": {"time": ["*"], "fx": ["echo"]}})
            assert patched.status_code == 200, patched.text
            try:
                with anyio.fail_after(5):
                    await subscription.__anext__()
                assert "fx__echo" in [t.name for t in await all_tools(client)]
            finally:
                restored = await admin.patch("/admin/keys/time-only", json={"mcp": {"time": ["*"]}})
                assert restored.status_code == 200
            with anyio.fail_after(5):
                await subscription.__anext__()
            assert "fx__echo" not in [t.name for t in await all_tools(client)]


@pytest.mark.parametrize("mode", MODES)
async def test_resources_templates_prompts_and_completions_are_aggregated(gateway: Gateway, mode: str) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        uris = [r.uri for r in (await client.list_resources()).resources]
        assert "isthmus://fx/demo://readme" in uris and "isthmus://web/demo://readme" in uris
        readme = await client.read_resource("isthmus://web/demo://readme")
        assert readme.contents[0].text == "This is the Isthmus demo MCP server."  # type: ignore[union-attr]
        assert readme.contents[0].uri == "isthmus://web/demo://readme"
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        assert "isthmus://fx/demo://colors/{color}" in templates
        red = await client.read_resource("isthmus://fx/demo://colors/red")
        assert red.contents[0].text == "red is a fine color"  # type: ignore[union-attr]
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        assert "fx__greet" in prompts and "web__greet" in prompts
        greeting = await client.get_prompt("fx__greet", {"person": "Ada", "color": "green"})
        assert "Ada" in greeting.messages[0].content.text  # type: ignore[union-attr]
        completion = await client.complete(
            types.PromptReference(type="ref/prompt", name="fx__greet"), {"name": "color", "value": "gr"}
        )
        assert completion.completion.values == ["green"]
    async with gateway.client(TIME_KEY, mode) as client:
        assert (await client.list_prompts()).prompts == []
        with pytest.raises(MCPError) as hidden:
            await client.read_resource("isthmus://fx/demo://readme")
        assert hidden.value.code == types.INVALID_PARAMS
    async with gateway.client(FULL_KEY, mode, server="fx") as client:
        assert "demo://readme" in [r.uri for r in (await client.list_resources()).resources]
        assert (await client.read_resource("demo://readme")).contents[0].uri == "demo://readme"


async def test_every_tool_call_leaves_one_audit_record(gateway: Gateway) -> None:
    async with gateway.client(LIMITED_KEY, "2026-07-28") as client:
        await client.call_tool("web__add", {"a": 20, "b": 22})
        with pytest.raises(MCPError):
            await client.call_tool("web__crash", {})
    with anyio.fail_after(5):
        while len(records := await gateway.audit(key="limited", customer="acme")) < 2:
            await anyio.sleep(0.05)
    denied = next(r for r in records if r["target"] == "web/crash")
    allowed = next(r for r in records if r["target"] == "web/add")
    assert (denied["decision"], denied["status"], denied["reason"]) == ("deny", 403, "tool_not_allowed")
    assert denied["details"]["outcome"] == "denied"
    assert (allowed["decision"], allowed["status"], allowed["team"]) == ("allow", 200, "agents")
    details = allowed["details"]
    assert details["server"] == "web" and details["tool"] == "add" and details["outcome"] == "ok"
    assert details["arguments_size"] == len('{"a":20,"b":22}') and len(details["arguments_sha256"]) == 64
    assert details["result_size"] > 0 and "arguments" not in details
    assert allowed["cost_usd"] == 0.002  # web's cost_per_call_usd, settled with the governor
    async with gateway.http(ADMIN_KEY) as admin:
        listed = await admin.get("/admin/audit", params={"kind": "tool_call", "target": "web/add", "key": "limited"})
    assert listed.status_code == 200 and [r["target"] for r in listed.json()["data"]] == ["web/add"]


async def test_a_rate_limited_call_is_a_tool_error_naming_the_limit(gateway: Gateway) -> None:
    async with gateway.client(METERED_KEY, "2026-07-28") as client:
        for _ in range(2):
            assert not (await client.call_tool("time__get_current_time", {"timezone": "UTC"})).is_error
        refused = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert refused.is_error and refused.content[0].text.startswith("Tool call refused:")  # type: ignore[union-attr]
        assert "time" in refused.content[0].text  # type: ignore[union-attr]
        # Another server has its own allowance.
        assert not (await client.call_tool("fx__echo", {"text": "fine"})).is_error
    records = await gateway.audit(key="metered", target="time/get_current_time")
    assert [r["status"] for r in records][:1] == [429] and records[0]["details"]["outcome"] == "denied"
