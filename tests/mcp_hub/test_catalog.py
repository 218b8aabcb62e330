from __future__ import annotations

import re

import mcp_types as types
import pytest

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog, Snapshot
from mcp_hub.errors import UnknownTool
from mcp_hub.listing import resolve_tool, tools_to_list
from mcp_hub.naming import MAX_NAME, exposed_name, hub_uri, server_of, split_hub_uri
from mcp_hub.paging import page
from toolpolicy.errors import InvalidRequest
from toolpolicy.globs import GlobSet
from toolpolicy.types import Principal

VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def tool(name: str, **extra: object) -> types.Tool:
    return types.Tool(name=name, input_schema={"type": "object"}, **extra)


def caller(mcp: dict[str, list[str]], *, server: str | None = None, narrow: str | None = None) -> Caller:
    principal = Principal(key_id="k1", key_name="k", mcp={s: GlobSet.of(g) for s, g in mcp.items()})
    return Caller(principal, "secret", server, GlobSet.of(narrow.split(",")) if narrow is not None else None)


def test_short_valid_names_are_server_double_underscore_tool() -> None:
    assert exposed_name("time", "get_current_time") == "time__get_current_time"
    assert server_of("time__get_current_time") == "time"
    assert server_of("my-docs__search__deep") == "my-docs"
    assert server_of("plain") is None


def test_long_or_invalid_names_are_shortened_deterministically_and_stay_valid() -> None:
    long_tool = "x" * 80
    short = exposed_name("docs", long_tool)
    assert VALID.match(short) and len(short) == MAX_NAME
    assert short == exposed_name("docs", long_tool)
    assert short.startswith("docs__xxx")
    dotted = exposed_name("docs", "pages.search")
    assert VALID.match(dotted) and dotted.startswith("docs__pages_search_")
    assert dotted != exposed_name("docs", "pages_search")


def test_hub_uris_round_trip_and_keep_templates_usable() -> None:
    uri = hub_uri("fx", "demo://colors/{color}")
    assert uri == "isthmus://fx/demo://colors/{color}"
    assert split_hub_uri("isthmus://fx/demo://readme") == ("fx", "demo://readme")
    assert split_hub_uri("demo://readme") is None
    assert split_hub_uri("isthmus://fx") is None


def test_the_catalog_orders_tools_by_server_then_name_whatever_the_update_order() -> None:
    catalog = Catalog()
    catalog.update("zeta", Snapshot(tools=(tool("b"), tool("a"))))
    catalog.update("alpha", Snapshot(tools=(tool("y"),)))
    assert [e.exposed for e in catalog.tools()] == ["alpha__y", "zeta__a", "zeta__b"]


def test_a_down_server_leaves_the_listing_but_its_names_still_resolve() -> None:
    catalog = Catalog()
    assert catalog.update("fx", Snapshot(tools=(tool("add"),), prompts=(types.Prompt(name="p"),))) == {
        "tools",
        "prompts",
    }
    assert catalog.update("fx", None) == {"tools", "prompts"}
    assert catalog.tools() == [] and not catalog.is_live("fx")
    entry = catalog.tool("fx__add")
    assert entry is not None and entry.server == "fx" and entry.name == "add"
    assert catalog.update("fx", Snapshot(tools=(tool("add"),))) == {"tools"}


def test_colliding_short_names_get_distinct_names_that_both_route() -> None:
    catalog = Catalog()
    base = "t" * 70
    # The second name is the first one's shortened form: the two would collide without the salt.
    catalog.update("s", Snapshot(tools=(tool(base), tool(exposed_name("s", base)[3:]))))
    names = [e.exposed for e in catalog.tools()]
    assert len(set(names)) == 2
    assert {catalog.tool(n).name for n in names if catalog.tool(n)} == {base, exposed_name("s", base)[3:]}  # type: ignore[union-attr]


def test_listing_applies_endpoint_allowlist_and_header_in_turn() -> None:
    catalog = Catalog()
    catalog.update("fx", Snapshot(tools=(tool("add"), tool("crash"), tool("echo"))))
    catalog.update("time", Snapshot(tools=(tool("get_current_time"),)))
    everyone = {"fx": ["*"], "time": ["*"]}
    assert [t.name for t in tools_to_list(caller({"fx": ["add", "echo"]}), catalog)] == ["fx__add", "fx__echo"]
    assert [t.name for t in tools_to_list(caller(everyone, server="fx"), catalog)] == ["add", "crash", "echo"]
    narrowed = caller(everyone, narrow="fx__e*,time__*")
    assert [t.name for t in tools_to_list(narrowed, catalog)] == ["fx__echo", "time__get_current_time"]
    # A header can narrow, never widen.
    assert [t.name for t in tools_to_list(caller({"fx": ["add"]}, narrow="*"), catalog)] == ["fx__add"]
    # On /mcp/<server> the header may name bare tools.
    assert [t.name for t in tools_to_list(caller(everyone, server="fx", narrow="echo"), catalog)] == ["echo"]


def test_a_hidden_tool_and_a_missing_tool_raise_the_same_error() -> None:
    catalog = Catalog()
    catalog.update("fx", Snapshot(tools=(tool("add"), tool("crash"))))
    limited = caller({"fx": ["add"]})
    with pytest.raises(UnknownTool) as hidden:
        resolve_tool(limited, catalog, "fx__crash")
    with pytest.raises(UnknownTool) as missing:
        resolve_tool(limited, catalog, "fx__nothing")
    assert (hidden.value.message, hidden.value.status) == ("Unknown tool: fx__crash", missing.value.status)
    assert hidden.value.reason == "tool_not_allowed" and missing.value.reason == "tool_not_found"
    assert resolve_tool(limited, catalog, "fx__add").name == "add"


def test_unprefixed_uris_go_to_the_one_server_that_has_them() -> None:
    catalog = Catalog()
    template = types.ResourceTemplate(name="c", uri_template="demo://colors/{color}")
    readme = types.Resource(name="r", uri="demo://readme")
    catalog.update("fx", Snapshot(resources=(readme,), templates=(template,)))
    catalog.update("web", Snapshot(resources=(readme,)))
    assert catalog.owner_of("demo://colors/red", ["fx", "web"]) == "fx"
    assert catalog.owner_of("demo://readme", ["fx", "web"]) is None  # two servers have it: ambiguous
    assert catalog.owner_of("demo://readme", ["web"]) == "web"
    assert catalog.owner_of("other://x", ["fx", "web"]) is None


def test_pages_cover_the_whole_list_and_bad_cursors_are_refused() -> None:
    items = list(range(7))
    first, cursor = page(items, None, 3)
    second, cursor2 = page(items, cursor, 3)
    third, last = page(items, cursor2, 3)
    assert first + second + third == items and last is None
    assert page(items, None, None) == (items, None)
    with pytest.raises(InvalidRequest, match="not one this server returned"):
        page(items, "garbage!", 3)
