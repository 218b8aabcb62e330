"""The hosted `mcp` tool of a Responses request: checked, and what it selects and asks approval for."""

from __future__ import annotations

from typing import Any

import pytest

from llm_proxy.responses.mcp import HostedSet, hosted_tools, parse
from toolpolicy.errors import InvalidRequest


def tool(**fields: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "docs", **fields}


def test_allowed_tools_as_a_list_or_a_filter_select_the_same_tools() -> None:
    for allowed in (["search", "get*page"], {"tool_names": ["search", "get*page"]}):
        entry = parse(tool(allowed_tools=allowed), 0)
        assert entry.selects("docs__search") and entry.selects("docs__get*page")
        assert not entry.selects("docs__getXpage")  # a name is a name, never a glob
        assert not entry.selects("other__search")
    assert parse(tool(), 0).selects("docs__anything")


@pytest.mark.parametrize(
    ("approval", "asks"),
    [
        (None, {"search": True, "read": True}),  # OpenAI's default: always
        ("always", {"search": True, "read": True}),
        ("never", {"search": False, "read": False}),
        ({"never": {"tool_names": ["read"]}}, {"search": True, "read": False}),
        ({"always": {"tool_names": ["search"]}}, {"search": True, "read": False}),
    ],
)
def test_require_approval_as_openai_reads_it(approval: Any, asks: dict[str, bool]) -> None:
    hosted = HostedSet([parse(tool(require_approval=approval), 0)])
    assert {name: hosted.needs_approval(f"docs__{name}") for name in asks} == asks
    assert not hosted.needs_approval("time__now")  # not selected by any mcp tool: the key's agent block's


@pytest.mark.parametrize(
    ("entry", "param"),
    [
        (tool(server_url="https://mcp.example.com"), "tools[3].server_url"),
        (tool(connector_id="connector_gmail"), "tools[3].connector_id"),
        (tool(server_label="Docs!"), "tools[3].server_label"),
        (tool(allowed_tools="search"), "tools[3].allowed_tools"),
        (tool(allowed_tools={"tool_names": [1]}), "tools[3].allowed_tools.tool_names"),
        (tool(require_approval="sometimes"), "tools[3].require_approval"),
        (tool(require_approval={"never": ["x"], "maybe": {}}), "tools[3].require_approval"),
    ],
)
def test_what_the_gateway_cannot_serve_is_refused_naming_the_field(entry: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse(entry, 3)
    assert refused.value.param == param


def test_a_server_named_twice_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        hosted_tools({"tools": [tool(), {"type": "function", "name": "f"}, tool()]})
    assert refused.value.param == "tools[2].server_label"
