"""Tool overrides and bundles on the catalog, without a gateway: naming, clashes found at run time, routing."""

from __future__ import annotations

import logging

import mcp_types as types
import pytest
from hypothesis import given, strategies as st

from mcp_hub.access import Caller
from mcp_hub.bundles import Bundle
from mcp_hub.catalog import Catalog, Snapshot
from mcp_hub.errors import UnknownTool
from mcp_hub.listing import code_mode_tools, name_for, resolve_tool, tools_to_list
from mcp_hub.overrides import aliases
from toolpolicy.bundles import McpBundleSettings
from toolpolicy.globs import GlobSet
from toolpolicy.tool_overrides import ToolOverride
from toolpolicy.types import Principal


def tool(name: str, **extra: object) -> types.Tool:
    return types.Tool(name=name, input_schema={"type": "object"}, **extra)


def caller(mcp: dict[str, list[str]], *, server: str | None = None, bundle: Bundle | None = None) -> Caller:
    principal = Principal(key_id="k1", key_name="k", mcp={s: GlobSet.of(g) for s, g in mcp.items()})
    return Caller(principal, "secret", server, None, frozenset(), bundle)


def test_a_rename_that_an_upstream_tool_already_has_is_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    catalog = Catalog({"docs": {"search": ToolOverride(rename="find", description="Find pages.")}})
    with caplog.at_level(logging.WARNING, logger="mcp_hub.overrides"):
        catalog.update("docs", Snapshot(tools=(tool("search", description="up"), tool("find"))))
    listed = {t.name: t for t in tools_to_list(caller({"docs": ["*"]}), catalog)}
    assert list(listed) == ["docs__find", "docs__search"]  # neither shadows the other
    assert listed["docs__search"].description == "Find pages."  # the rest of the override still applies
    assert "docs__search is not renamed to 'find'" in caplog.text
    assert resolve_tool(caller({"docs": ["*"]}), catalog, "docs__find").name == "find"


def test_a_renamed_tool_resolves_by_its_new_name_only_and_policy_sees_the_real_one() -> None:
    catalog = Catalog({"docs": {"search": ToolOverride(rename="find")}})
    catalog.update("docs", Snapshot(tools=(tool("search"), tool("get_page"))))
    anyone = caller({"docs": ["search"]})
    assert [t.name for t in tools_to_list(anyone, catalog)] == ["docs__find"]
    assert resolve_tool(anyone, catalog, "docs__find").name == "search"
    with pytest.raises(UnknownTool):
        resolve_tool(anyone, catalog, "docs__search")
    with pytest.raises(UnknownTool):  # the allowlist names the real tool: `find` allows nothing
        resolve_tool(caller({"docs": ["find"]}), catalog, "docs__find")
    one = caller({"docs": ["*"]}, server="docs")
    assert [t.name for t in tools_to_list(one, catalog)] == ["find", "get_page"]
    assert resolve_tool(one, catalog, "find").name == "search"
    assert name_for(anyone, catalog, "docs", "find") == "docs__find"


def test_a_bundle_index_follows_the_catalog_and_layers_its_overrides() -> None:
    catalog = Catalog({"docs": {"search": ToolOverride(rename="find", description="server")}})
    settings = McpBundleSettings(
        tools=["docs__*", "crm__lookup"],
        overrides={
            "docs__search": ToolOverride(title="Search"),
            "crm__lookup": ToolOverride(rename="customer", description="bundle"),
        },
    )
    bundle = Bundle("support", settings)
    catalog.update("docs", Snapshot(tools=(tool("search"),)))
    catalog.update("crm", Snapshot(tools=(tool("lookup"), tool("delete"))))
    everyone = caller({"docs": ["*"], "crm": ["*"]}, bundle=bundle)
    listed = {t.name: t for t in tools_to_list(everyone, catalog)}
    assert list(listed) == ["crm__customer", "docs__find"]
    assert listed["docs__find"].description == "server" and listed["docs__find"].title == "Search"
    assert listed["crm__customer"].description == "bundle"
    assert resolve_tool(everyone, catalog, "crm__customer").name == "lookup"
    with pytest.raises(UnknownTool):
        resolve_tool(everyone, catalog, "crm__delete")
    catalog.update("docs", Snapshot(tools=(tool("search"), tool("get_page"))))
    assert [t.name for t in tools_to_list(everyone, catalog)] == ["crm__customer", "docs__find", "docs__get_page"]
    catalog.update("crm", None)  # down: gone from the listing, still known for a call to say so
    assert [t.name for t in tools_to_list(everyone, catalog)] == ["docs__find", "docs__get_page"]
    assert resolve_tool(everyone, catalog, "crm__customer").server == "crm"


def test_code_mode_binds_tools_by_the_names_the_endpoint_shows() -> None:
    catalog = Catalog({"docs": {"search": ToolOverride(rename="find")}})
    catalog.update("docs", Snapshot(tools=(tool("search"),)))
    principal = Principal(key_id="k1", key_name="k", mcp={"docs": GlobSet.of(["*"])}, code_mode=True)
    bundle = Bundle("b", McpBundleSettings(tools=["docs__*"], overrides={"docs__search": ToolOverride(rename="q")}))
    on_mcp, on_bundle = Caller(principal, "s"), Caller(principal, "s", bundle=bundle)
    assert [e.alias for e in code_mode_tools(on_mcp, catalog)] == ["find"]
    assert [e.alias for e in code_mode_tools(on_bundle, catalog)] == ["q"]
    assert name_for(on_bundle, catalog, "docs", "q") == "docs__q"
    assert resolve_tool(on_bundle, catalog, "docs__q", via="code_mode").name == "search"


names = st.text(alphabet="abcd", min_size=1, max_size=3)


@given(st.sets(names, max_size=6), st.dictionaries(names, names), st.dictionaries(names, names))
def test_renames_in_two_layers_never_give_two_tools_one_name_nor_take_a_real_name(
    tools: set[str], server_renames: dict[str, str], bundle_renames: dict[str, str]
) -> None:
    server = aliases("s", {name: name for name in tools}, server_renames, "server")
    bundle = aliases("s", server, bundle_renames, "bundle")
    for layer in (server, bundle):
        assert set(layer) == tools
        assert len(set(layer.values())) == len(layer)
        for name, alias in layer.items():
            assert alias == name or alias not in tools  # never another tool's upstream name
    for name in tools:
        assert server[name] in (name, server_renames.get(name))
        assert bundle[name] in (server[name], bundle_renames.get(name))
