"""A caller's last tool lookup is found again while the catalog stands, and never once anything it read changed."""

from __future__ import annotations

import dataclasses

import mcp_types as types
import pytest

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog, Entry, Snapshot
from mcp_hub.errors import CodeModeOnly, UnknownTool
from mcp_hub.listing import CODE_MODE_VIA, resolve_tool
from toolpolicy.globs import GlobSet
from toolpolicy.types import Principal


def tool(name: str, description: str = "") -> types.Tool:
    return types.Tool(name=name, description=description, input_schema={"type": "object"})


def caller(mcp: dict[str, list[str]], *, code_mode: bool | None = None) -> Caller:
    principal = Principal(
        key_id="k1", key_name="k", mcp={s: GlobSet.of(g) for s, g in mcp.items()}, code_mode=code_mode
    )
    return Caller(principal, "secret")


class CountingCatalog(Catalog):
    """A catalog that counts the lookups by `/mcp` name."""

    lookups = 0

    def tool(self, exposed: str) -> Entry[types.Tool] | None:
        self.lookups += 1
        return super().tool(exposed)


def test_the_second_lookup_of_a_call_finds_the_first_ones_entry() -> None:
    catalog = CountingCatalog()
    catalog.update("docs", Snapshot(tools=(tool("search"), tool("fetch"))))
    anyone = caller({"docs": ["*"]})
    first = resolve_tool(anyone, catalog, "docs__search")
    assert resolve_tool(anyone, catalog, "docs__search") is first
    assert catalog.lookups == 1
    assert resolve_tool(anyone, catalog, "docs__fetch").name == "fetch"  # another name is looked up
    assert resolve_tool(anyone, catalog, "docs__search") is first
    assert catalog.lookups == 3
    assert caller({"docs": ["*"]}) == anyone  # what was found is no part of who the caller is


def test_a_catalog_update_between_the_lookups_is_seen() -> None:
    catalog = CountingCatalog()
    catalog.update("docs", Snapshot(tools=(tool("search", "old"),)))
    anyone = caller({"docs": ["*"]})
    assert resolve_tool(anyone, catalog, "docs__search").item.description == "old"
    catalog.update("docs", Snapshot(tools=(tool("search", "new"),)))
    assert resolve_tool(anyone, catalog, "docs__search").item.description == "new"
    catalog.update("docs", Snapshot(tools=(tool("fetch"),)))
    with pytest.raises(UnknownTool):
        resolve_tool(anyone, catalog, "docs__search")


def test_refusals_are_not_kept_and_the_code_mode_check_runs_each_time() -> None:
    catalog = CountingCatalog()
    catalog.update("docs", Snapshot(tools=(tool("search"),)))
    nobody = caller({"docs": ["fetch"]})
    for _ in range(2):
        with pytest.raises(UnknownTool) as refused:
            resolve_tool(nobody, catalog, "docs__search")
        assert refused.value.hidden
    assert catalog.lookups == 2
    coder = caller({"docs": ["*"]}, code_mode=True)
    assert resolve_tool(coder, catalog, "docs__search", via=CODE_MODE_VIA).name == "search"
    with pytest.raises(CodeModeOnly):  # found again, but a direct call of a Code Mode tool is still refused
        resolve_tool(coder, catalog, "docs__search")


def test_a_caller_made_from_another_starts_with_nothing_found() -> None:
    catalog = CountingCatalog()
    catalog.update("docs", Snapshot(tools=(tool("search"),)))
    before = caller({"docs": ["*"]})
    resolve_tool(before, catalog, "docs__search")
    narrowed = dataclasses.replace(before, principal=Principal(key_id="k1", key_name="k", mcp={}))
    with pytest.raises(UnknownTool):  # the new grants decide, not what the old caller found
        resolve_tool(narrowed, catalog, "docs__search")
