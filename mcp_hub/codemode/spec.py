"""The seam between Code Mode and the hub: which tools a key may use here, and how one of them is called."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One upstream tool that the calling key may use through Code Mode.

    Only tools handed in as specs are searched, documented and bound in the sandbox: the hub passes exactly the
    tools the key may use, so anything else does not exist as far as the program can tell.
    """

    server: str
    """The upstream server's name, as configured (`[a-z0-9-]+`)."""
    name: str
    """The upstream's own tool name (not the `<server>__<tool>` name of `/mcp`)."""
    description: str | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None
    """MCP tool annotations in wire form (`readOnlyHint`, `destructiveHint`, ...)."""

    @classmethod
    def from_tool(cls, server: str, tool: types.Tool) -> ToolSpec:
        """The spec of an upstream's listed tool."""
        annotations = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else None
        return cls(
            server=server,
            name=tool.name,
            description=tool.description,
            input_schema=dict(tool.input_schema),
            output_schema=dict(tool.output_schema) if tool.output_schema is not None else None,
            annotations=annotations or None,
        )


ToolCaller = Callable[[str, str, dict[str, Any]], Awaitable[types.CallToolResult]]
"""`(server, tool, arguments) -> result`: one governed tool call made by a program.

The hub's implementation runs the same path as a direct call (allowlist, rate limits, budgets, audit with
`via="code_mode"` and the run's id). It returns the upstream's result (`is_error` for tool errors and refusals such
as a rate limit) or raises a `GatewayError` (e.g. the tool is no longer allowed); either reaches the program as an
exception it can catch.
"""
