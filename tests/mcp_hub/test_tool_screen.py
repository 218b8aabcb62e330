"""The screen that drops invalid tools from `tools/list` answers, and the record of unsupported methods."""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
import pytest
from hypothesis import given, settings, strategies as st
from mcp_types import methods

from mcp_hub.errors import UpstreamRejected
from mcp_hub.upstreams.optional import UnsupportedMethods, answered_or_none, listed_or_empty
from mcp_hub.upstreams.screen import ToolScreen

GOOD = {"name": "add", "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}}}}
LEGACY = "2025-11-25"


def request(id: int, method: str, params: dict[str, Any] | None = None) -> types.JSONRPCRequest:
    return types.JSONRPCRequest(jsonrpc="2.0", id=id, method=method, params=params)


def answer(id: int, result: dict[str, Any]) -> types.JSONRPCResponse:
    return types.JSONRPCResponse(jsonrpc="2.0", id=id, result=result)


def listing(screen: ToolScreen, id: int, tools: list[Any], *, cursor: str | None = None) -> list[Any]:
    screen.outgoing(request(id, "tools/list", {"cursor": cursor} if cursor else None))
    screened = screen.incoming(answer(id, {"tools": tools}))
    assert isinstance(screened, types.JSONRPCResponse)
    result: list[Any] = screened.result["tools"]
    return result


def test_invalid_tools_are_dropped_with_why_and_the_rest_kept() -> None:
    screen = ToolScreen("srv")
    tools = [
        GOOD,
        {"name": "stringy", "inputSchema": "not an object"},
        {"name": "scalar", "inputSchema": {"type": "string"}},
        {"name": "bogus", "inputSchema": {"type": "object", "properties": {"n": {"type": "bogus"}}}},
        {"name": "out", "inputSchema": {"type": "object"}, "outputSchema": {"type": "object", "minProperties": -1}},
        {"inputSchema": {"type": "object"}},
    ]
    assert listing(screen, 1, tools) == [GOOD]
    assert set(screen.rejected) == {"stringy", "scalar", "bogus", "out", "#5"}
    assert screen.rejected["scalar"].startswith("inputSchema.type: Input should be 'object'")
    assert screen.rejected["out"].startswith("outputSchema is not a valid JSON Schema at minProperties")


def test_only_tools_list_answers_are_screened() -> None:
    screen = ToolScreen("srv")
    screen.outgoing(request(1, "tools/call", {"name": "x"}))
    odd = answer(1, {"tools": [{"name": "stringy", "inputSchema": "x"}], "content": []})
    assert screen.incoming(odd) is odd and screen.rejected == {}


def test_a_new_listing_forgets_the_previous_rejections_and_a_later_page_adds_to_them() -> None:
    screen = ToolScreen("srv")
    listing(screen, 1, [{"name": "a", "inputSchema": 1}])
    listing(screen, 2, [{"name": "b", "inputSchema": 1}], cursor="page-2")
    assert set(screen.rejected) == {"a", "b"}
    listing(screen, 3, [GOOD])
    assert screen.rejected == {}


def test_a_rejected_tool_is_logged_once_per_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mcp_hub.upstreams.screen")
    screen = ToolScreen("srv")
    for id in range(1, 4):
        listing(screen, id, [GOOD, {"name": "bad", "inputSchema": []}])
    assert len([m for m in caplog.messages if "tool 'bad' skipped" in m]) == 1


def test_the_negotiated_version_decides_the_shape() -> None:
    # A 2026-07-28 listing must carry its cache hints; the screen checks tools against that era's shape too.
    screen = ToolScreen("srv")
    meta = {types.PROTOCOL_VERSION_META_KEY: "2026-07-28"}
    screen.outgoing(request(1, "tools/list", {"_meta": meta}))
    hints = {"ttlMs": 0, "cacheScope": "private", "resultType": "complete"}
    result = {"tools": [GOOD, {"name": "x", "inputSchema": 5}], **hints}
    screened = screen.incoming(answer(1, result))
    assert isinstance(screened, types.JSONRPCResponse)
    assert screened.result["tools"] == [GOOD] and screened.result["cacheScope"] == "private"
    methods.validate_server_result("tools/list", "2026-07-28", screened.result)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
SCHEMA_KEYS = st.sampled_from(["type", "properties", "required", "items", "enum", "minimum", "$ref", "x"])
SCHEMAS = JSON | st.dictionaries(SCHEMA_KEYS, JSON, max_size=4) | st.just({"type": "object"})
TOOLS = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=8) | st.integers()},
    optional={"inputSchema": SCHEMAS, "outputSchema": SCHEMAS, "description": JSON},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TOOLS | JSON, max_size=6))
def test_whatever_a_server_lists_the_screened_answer_is_valid(tools: list[Any]) -> None:
    screen = ToolScreen("srv")
    listed = [GOOD, *tools]
    kept = listing(screen, 1, listed)
    methods.validate_server_result("tools/list", LEGACY, {"tools": kept})
    assert kept[0] == GOOD
    remaining = iter(kept)
    pending = next(remaining, None)
    for index, tool in enumerate(listed):
        if pending is tool:  # kept, in order, unchanged
            pending = next(remaining, None)
            continue
        name = tool.get("name") if isinstance(tool, dict) else None
        assert (name if isinstance(name, str) else f"#{index}") in screen.rejected
    assert pending is None


@pytest.mark.anyio
async def test_a_failed_listing_is_empty_and_noted_once_and_cleared_when_it_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mcp.shared.exceptions import MCPError

    caplog.set_level(logging.WARNING, logger="mcp_hub.upstreams.optional")
    record = UnsupportedMethods("srv")

    async def missing() -> list[str]:
        raise MCPError(code=types.METHOD_NOT_FOUND, message="Method not found")

    async def works() -> list[str]:
        return ["item"]

    for _ in range(3):
        assert await listed_or_empty(record, "resources/templates/list", missing) == []
    assert record.as_list() == [{"method": "resources/templates/list", "error": "error -32601: Method not found"}]
    assert len([m for m in caplog.messages if "resources/templates/list failed" in m]) == 1
    assert await listed_or_empty(record, "resources/templates/list", works) == ["item"]
    assert record.as_list() == []


@pytest.mark.anyio
async def test_a_lost_connection_is_not_an_unsupported_method() -> None:
    from mcp.shared.exceptions import MCPError

    record = UnsupportedMethods("srv")

    async def closed() -> list[str]:
        raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")

    with pytest.raises(MCPError):
        await listed_or_empty(record, "prompts/list", closed)
    assert record.as_list() == []


@pytest.mark.anyio
async def test_only_method_not_found_makes_a_call_time_method_unsupported() -> None:
    record = UnsupportedMethods("srv")

    async def reject(code: int) -> None:
        raise UpstreamRejected("srv", code, "no")

    assert await answered_or_none(record, "completion/complete", reject(types.METHOD_NOT_FOUND)) is None
    assert [entry["method"] for entry in record.as_list()] == ["completion/complete"]
    with pytest.raises(UpstreamRejected):
        await answered_or_none(record, "completion/complete", reject(types.INVALID_PARAMS))
