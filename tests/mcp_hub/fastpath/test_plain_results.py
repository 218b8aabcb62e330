"""`HubRunner`: a plain tool result's wire form is exactly the SDK kernel's, for every protocol version, without the
second validation; anything else is the SDK's own."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from mcp.server import Server
from mcp.server.connection import Connection
from mcp.server.runner import ServerRunner
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CallToolResult,
    ImageContent,
    ListToolsResult,
    TextContent,
    methods,
)
from mcp_types.version import KNOWN_PROTOCOL_VERSIONS

from mcp_hub.fastpath import plain_results
from mcp_hub.fastpath.kernel import HubRunner
from mcp_hub.fastpath.plain_results import plain_wire
from tests.json_fuzz_support import WEIRD_TEXT, plain_values

SERVER: Server[Any] = Server("probe", version="1.0")


def runners(version: str) -> tuple[ServerRunner[Any], HubRunner]:
    def connection() -> Connection:
        return Connection.from_envelope(version, None, None)

    return ServerRunner(SERVER, connection(), None), HubRunner(SERVER, connection(), None)


def both(version: str, result: Any) -> tuple[Any, Any]:
    """What the SDK's kernel and the hub's make of `result` (a dict, or the error raised)."""
    sdk, hub = runners(version)
    outcomes: list[Any] = []
    for runner in (sdk, hub):
        try:
            outcomes.append(runner._serialize("tools/call", version, result.model_copy(deep=True)))
        except MCPError as exc:
            outcomes.append((exc.code, exc.message))
    return outcomes[0], outcomes[1]


results = st.builds(
    CallToolResult,
    content=st.lists(st.builds(TextContent, text=st.one_of(st.text(max_size=20), WEIRD_TEXT)), max_size=3),
    structured_content=st.one_of(
        st.none(),
        st.dictionaries(st.text(max_size=6), plain_values(), max_size=4),
        plain_values(),
        st.sampled_from([{"x": math.nan}, {"x": (1, 2)}, {"x": math.inf}, {1: "a"}, [1, 2]]),
    ),
    is_error=st.booleans(),
    meta=st.one_of(st.none(), st.just({"k": 1})),
)


@settings(max_examples=300)
@given(result=results, version=st.sampled_from(KNOWN_PROTOCOL_VERSIONS))
def test_the_wire_form_is_the_sdks(result: CallToolResult, version: str) -> None:
    sdk, hub = both(version, result)
    assert hub == sdk
    if isinstance(sdk, dict):
        assert list(hub) == list(sdk) and [list(item) for item in hub["content"]] == [
            list(item) for item in sdk["content"]
        ]


def test_a_plain_result_skips_the_second_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CallToolResult(content=[TextContent(text="hi")], structured_content={"n": [1, 2.5, None]})
    expected = both("2026-07-28", result)[0]

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("validated again")

    monkeypatch.setattr(methods, "serialize_server_result", refused)
    assert runners("2026-07-28")[1]._serialize("tools/call", "2026-07-28", result) == expected
    assert expected["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "probe"


@pytest.mark.parametrize(
    "result",
    [
        CallToolResult(content=[ImageContent(data="AA==", mime_type="image/png")]),
        CallToolResult(content=[TextContent(text="hi", meta={"m": 1})]),
        CallToolResult(content=[TextContent(text="hi")], meta={"k": 1}),
        CallToolResult(content=[TextContent(text="hi")], structured_content={"x": math.nan}),
        CallToolResult(content=[TextContent(text="hi")], structured_content=[1]),
    ],
)
def test_anything_else_is_left_to_the_sdk(result: CallToolResult) -> None:
    assert plain_wire("2026-07-28", result) is None


def test_other_results_and_methods_are_the_sdks() -> None:
    sdk, hub = runners("2026-07-28")
    listed = ListToolsResult(tools=[])
    assert hub._serialize("tools/list", "2026-07-28", listed) == sdk._serialize("tools/list", "2026-07-28", listed)


def test_a_version_the_layout_does_not_fit_is_left_to_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plain_results, "_layouts", {})
    annotated = [{"type": "text", "text": "probe", "annotations": {"priority": 1}}]  # a dump it does not build
    monkeypatch.setattr(plain_results, "_PROBE", {**plain_results._PROBE, "content": annotated})
    assert plain_wire("2026-07-28", CallToolResult(content=[])) is None
    assert plain_results._layouts == {"2026-07-28": None}


@pytest.mark.parametrize("version", KNOWN_PROTOCOL_VERSIONS)
def test_every_known_layout_is_written_as_one_display_and_the_general_way_writes_the_same(version: str) -> None:
    layout = plain_results._learn(version)
    assert layout is not None and layout.direct
    general = plain_results.Layout(layout.keys, layout.item_keys, direct=False)
    for structured in ({"x": [1, 2.5, None]}, None):
        result = CallToolResult(
            content=[TextContent(type="text", text="a"), TextContent(type="text", text="b")],
            structured_content=structured,
            is_error=False,
        )
        items = [{"text": "a", "type": "text"}, {"text": "b", "type": "text"}]
        direct = plain_results._build(layout, result, [dict(item) for item in items])
        other = plain_results._build(general, result, items)
        assert direct == other and list(direct) == list(other)
        assert [list(item) for item in direct["content"]] == [list(item) for item in other["content"]]
