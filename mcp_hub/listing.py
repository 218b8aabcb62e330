"""What a caller is shown, and which upstream tool a called name means: the one seam every listing goes through.

A tool the caller may use is offered one of two ways (`Caller.in_code_mode`): directly, listed by `tools_to_list`
and called by its name; or through Code Mode, where `code_mode_tools` hands it to the meta-tools and only calls made
from a program (`via="code_mode"`) reach it. Each way refuses the other's calls, so what is listed is exactly what
answers.
"""

from __future__ import annotations

import mcp_types as types

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog, Entry
from mcp_hub.errors import CodeModeOnly, UnknownTool
from mcp_hub.naming import SEPARATOR, qualified, server_of

CODE_MODE_VIA = "code_mode"
"""The `via` of calls made by Code Mode programs, in the pipeline and in audit records."""


def _endpoint_tools(caller: Caller, catalog: Catalog) -> list[Entry[types.Tool]]:
    """The live tools of the caller's endpoint, named (and overridden) as that endpoint shows them."""
    return caller.bundle.tools(catalog) if caller.bundle is not None else catalog.tools()


def _lookup(caller: Caller, catalog: Catalog, name: str) -> Entry[types.Tool] | None:
    if caller.bundle is not None:
        return caller.bundle.index(catalog).get(name)
    if caller.server is not None:
        return catalog.tool_named(caller.server, name)
    return catalog.tool(name)


def tools_to_list(caller: Caller, catalog: Catalog) -> list[types.Tool]:
    """The tools `caller` calls directly, in the catalog's order, named as the caller will call them."""
    return [
        entry.item.model_copy(update={"name": caller.name_of(entry)})
        for entry in _endpoint_tools(caller, catalog)
        if caller.may_use(entry.server, entry.name) and not caller.in_code_mode(entry.server)
    ]


def code_mode_tools(caller: Caller, catalog: Catalog) -> list[Entry[types.Tool]]:
    """The live tools `caller` may use through Code Mode, in the catalog's order (their `alias` is their name)."""
    return [
        entry
        for entry in _endpoint_tools(caller, catalog)
        if caller.may_use(entry.server, entry.name) and caller.in_code_mode(entry.server)
    ]


def resolve_tool(caller: Caller, catalog: Catalog, name: str, *, via: str | None = None) -> Entry[types.Tool]:
    """The tool `name` means for `caller`, live or remembered from a server that is down.

    Raises UnknownTool for a name that does not exist and, with the very same error, for one the caller may not use.
    A direct call of a tool the caller uses through Code Mode gets CodeModeOnly, which says how to reach it.
    """
    entry = _usable(caller, catalog, name)
    from_code = via == CODE_MODE_VIA
    if caller.in_code_mode(entry.server) != from_code:
        if from_code:
            raise UnknownTool(name)  # Code Mode binds only its own servers' tools: unreachable from a program
        raise CodeModeOnly(name, entry.server)
    return entry


def _usable(caller: Caller, catalog: Catalog, name: str) -> Entry[types.Tool]:
    """The tool `name` means for `caller` if the caller may use it, else UnknownTool; the last one found is kept on
    the caller with the catalog's index (`FoundTool`), and found again there while that index stands."""
    index, found = catalog.tool_index, caller.found
    entry = found.entry
    if entry is not None and found.name == name and found.index is index:
        return entry
    entry = _lookup(caller, catalog, name)
    if entry is None:
        raise UnknownTool(name)
    if not caller.may_use(entry.server, entry.name):
        raise UnknownTool(name, hidden=True)
    found.name, found.index, found.entry = name, index, entry
    return entry


def name_for(caller: Caller, catalog: Catalog, server: str, alias: str) -> str:
    """The name `caller` would call the tool `alias` of `server` by (what `resolve_tool` maps back to that tool).

    `alias` is the tool's name within its server as the caller's endpoint shows it (what Code Mode binds).
    """
    if caller.server is not None:
        return alias
    entries = caller.bundle.index(catalog).values() if caller.bundle is not None else catalog.all_tools()
    entry = next((e for e in entries if e.server == server and e.alias == alias), None)
    return entry.exposed if entry is not None else qualified(server, alias)


def named_target(caller: Caller, name: str) -> tuple[str | None, str]:
    """`(server, tool)` as far as the called name says, for the audit record of a call that resolves to nothing."""
    if caller.server is not None:
        return caller.server, name
    server = server_of(name)
    return (server, name[len(server) + len(SEPARATOR) :]) if server else (None, name)
