"""Python names for servers, tools and parameters, lookups by any spelling, and BM25 ranking."""

from __future__ import annotations

import mcp_types as types
import pytest

from mcp_hub.codemode import ToolSpec
from mcp_hub.codemode.search import SearchIndex, terms
from mcp_hub.codemode.toolbox import Toolbox, function_name, module_name, parameter_name
from tests.mcp_hub.codemode.conftest import spec


@pytest.mark.parametrize(
    ("server", "module"),
    [("docs", "docs"), ("my-crm", "my_crm"), ("time", "time_server"), ("json", "json_server"), ("open", "open_server"),
     ("3d", "server_3d"), ("class", "class_server"), ("result", "result_server")],
)  # fmt: skip
def test_servers_become_modules_that_do_not_shadow_the_sandbox(server: str, module: str) -> None:
    assert module_name(server) == module


@pytest.mark.parametrize(
    ("tool", "function"),
    [("search", "search"), ("get-page", "get_page"), ("files.read", "files_read"), ("_private", "private"),
     ("2fa", "tool_2fa"), ("import", "import_"), ("getPage", "getPage")],
)  # fmt: skip
def test_tools_become_functions(tool: str, function: str) -> None:
    assert function_name(tool) == function


@pytest.mark.parametrize(
    ("wire", "python"), [("class", "class_"), ("x-id", "x_id"), ("2fa", "_2fa"), ("", "arg"), ("match", "match")]
)
def test_parameters_become_identifiers(wire: str, python: str) -> None:
    assert parameter_name(wire) == python


def test_colliding_names_get_numbered_suffixes_in_upstream_order() -> None:
    toolbox = Toolbox([spec("a", "get-item"), spec("a", "get_item"), spec("time", "now"), spec("time-server", "now")])
    assert [tool.qualified for tool in toolbox.tools] == [
        "a.get_item",
        "a.get_item_2",
        "time_server.now",
        "time_server_2.now",
    ]
    (tool,) = Toolbox([spec("a", "f", {"x-y": {}, "x_y": {}})]).tools
    assert [(param.name, param.wire) for param in tool.params] == [("x_y", "x-y"), ("x_y_2", "x_y")]


def test_find_accepts_every_spelling_of_a_tool_name() -> None:
    toolbox = Toolbox([spec("my-crm", "find-records"), spec("docs", "search"), spec("web", "search")])
    crm = toolbox.find("my_crm.find_records")
    assert crm is not None
    for spelling in (
        "my-crm.find-records",
        "my-crm__find-records",
        "my-crm/find-records",
        "find_records",
        "find-records",
    ):
        assert toolbox.find(spelling) is crm
    assert toolbox.find("search") is None  # two servers have one: a bare name must be unique
    assert toolbox.find("delete") is None
    assert toolbox.get("my-crm.find-records") is None  # the sandbox reports exact Python names only
    assert toolbox.get("my_crm.find_records") is crm


def test_duplicate_specs_are_bound_once() -> None:
    assert len(Toolbox([spec("a", "f"), spec("a", "f")])) == 1


def test_terms_split_names_and_fold_plurals() -> None:
    assert terms("getIssues list_tickets HTTPServer addresses") == [
        "get", "issue", "list", "ticket", "http", "server", "address"
    ]  # fmt: skip


CATALOG = [
    spec("tickets", "create_ticket", {"title": {}}, description="Open a new support ticket for a customer."),
    spec("tickets", "search_tickets", {"query": {}, "status": {}}, description="Find tickets by text and status."),
    spec("tickets", "close_ticket", {"ticket_id": {}}, description="Close a ticket once it is resolved."),
    spec("crm", "get_account", {"account_id": {}}, description="Fetch an account with its owner and plan."),
    spec("crm", "list_contacts", {"account_id": {}}, description="Contacts of an account."),
    spec("billing", "list_invoices", {"account_id": {}, "status": {}}, description="Invoices of an account."),
]


def ranked(query: str, limit: int = 10) -> list[str]:
    return [tool.qualified for tool, _ in SearchIndex(Toolbox(CATALOG).tools).search(query, limit)]


def test_search_ranks_tools_named_for_the_query_first() -> None:
    assert ranked("search tickets")[0] == "tickets.search_tickets"
    assert ranked("invoices")[0] == "billing.list_invoices"
    assert ranked("create a ticket")[0] == "tickets.create_ticket"
    assert ranked("account owner")[0] == "crm.get_account"


def test_search_matches_parameter_names_and_server_names() -> None:
    assert set(ranked("account_id")[:3]) == {"crm.get_account", "crm.list_contacts", "billing.list_invoices"}
    assert ranked("account_id")[3:] == ["tickets.close_ticket"]  # `ticket_id` shares the weaker word "id"
    assert set(ranked("crm")) == {"crm.get_account", "crm.list_contacts"}


def test_search_leaves_out_tools_matching_nothing_and_respects_the_limit() -> None:
    assert ranked("kubernetes pods") == []
    assert len(ranked("ticket", limit=2)) == 2
    assert ranked("the of and") == []


def test_search_is_deterministic_on_ties() -> None:
    tools = Toolbox([spec("b", "same"), spec("a", "same"), spec("c", "same")]).tools
    assert [tool.qualified for tool, _ in SearchIndex(tools).search("same", 10)] == ["a.same", "b.same", "c.same"]


def test_from_tool_copies_an_upstream_definition() -> None:
    tool = types.Tool(
        name="t",
        description="d",
        input_schema={"type": "object", "properties": {"a": {"type": "string"}}},
        output_schema={"type": "object"},
        annotations=types.ToolAnnotations(read_only_hint=True),
    )
    assert ToolSpec.from_tool("srv", tool) == ToolSpec(
        "srv", "t", "d", {"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "object"},
        {"readOnlyHint": True},
    )  # fmt: skip
