"""What a caller is shown, and which upstream tool a called name means: the one seam every listing goes through.

Code Mode plugs in here: for servers served through Code Mode, `tools_to_list` returns its meta-tools instead of
the servers' tools, and `resolve_tool` routes the meta-tools' names to it.
"""

from __future__ import annotations

import mcp_types as types

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog, Entry
from mcp_hub.errors import UnknownTool
from mcp_hub.naming import SEPARATOR, server_of


def tools_to_list(caller: Caller, catalog: Catalog) -> list[types.Tool]:
    """The tools `caller` may see, in the catalog's order, named as the caller will call them."""
    return [
        entry.item.model_copy(update={"name": caller.name_of(entry)})
        for entry in catalog.tools()
        if caller.may_use(entry.server, entry.name)
    ]


def resolve_tool(caller: Caller, catalog: Catalog, name: str) -> Entry[types.Tool]:
    """The tool `name` means for `caller`, live or remembered from a server that is down.

    Raises UnknownTool for a name that does not exist and, with the very same error, for one the caller may not use.
    """
    if caller.server is not None:
        entry = catalog.tool_of(caller.server, name)
    else:
        entry = catalog.tool(name)
    if entry is None:
        raise UnknownTool(name)
    if not caller.may_use(entry.server, entry.name):
        raise UnknownTool(name, hidden=True)
    return entry


def named_target(caller: Caller, name: str) -> tuple[str | None, str]:
    """`(server, tool)` as far as the called name says, for the audit record of a call that resolves to nothing."""
    if caller.server is not None:
        return caller.server, name
    server = server_of(name)
    return (server, name[len(server) + len(SEPARATOR) :]) if server else (None, name)
