"""The input schema the SDK checks a 2026-07-28 `tools/call`'s `Mcp-Param-*` headers against (SEP-2243).

The SDK validates the headers before dispatch, against the schema `Server(get_tool_input_schema=)` returns for the
called name; that hook gets the name alone. The same name means different tools on different endpoints (`/mcp`
says `fx__add`, `/mcp/fx` says `add`, a bundle may rename), so the endpoint leaves the request's `Caller` in
`CURRENT_CALLER` (the SDK runs the check in the endpoint's task), and the schema is that of the tool this caller's
call would reach: the upstream's own, from the catalog, `x-mcp-header` declarations included. A name the caller
cannot call has no schema here: the call itself is refused as an unknown tool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog
from mcp_hub.listing import resolve_tool
from toolpolicy.errors import GatewayError

CURRENT_CALLER: ContextVar[Caller | None] = ContextVar("isthmus_mcp_caller", default=None)


def caller_input_schemas(catalog: Catalog) -> Callable[[str], Mapping[str, Any] | None]:
    """`get_tool_input_schema` for the hub's server: the schema of the tool `name` means to the current caller."""

    def input_schema(name: str) -> Mapping[str, Any] | None:
        caller = CURRENT_CALLER.get()
        if caller is None:
            return None
        try:
            return resolve_tool(caller, catalog, name).item.input_schema
        except GatewayError:
            return None

    return input_schema
