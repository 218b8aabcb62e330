"""The hub tests' upstream: the demo server plus tools that fail, run slowly, crash, flood and change the tool list.

`python tests/servers/fixture_server.py [--http PORT | --sse PORT]`. `FIXTURE_NAME` renames the server, so two copies
are told apart.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import MISSING_REQUIRED_CLIENT_CAPABILITY, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_hub.demo_server import build_server, serve

# The SDK's stdio server moves fd 1 aside so stray prints cannot corrupt the wire; a copy taken first is the wire,
# which is what a server written without that care floods.
WIRE = os.dup(1)
REGION_HEADER: dict[str, object] = {"x-mcp-header": "Region"}
LONG_NAME = "a_tool_with_a_name_long_enough_to_push_the_qualified_name_past_sixty_four_chars"


class Weather(BaseModel):
    city: str
    temp_c: float


def build_fixture() -> MCPServer:
    server = build_server(os.environ.get("FIXTURE_NAME", "fixture"))

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False))
    def fail(message: str = "it failed") -> str:
        """Always fails with a tool error."""
        raise ToolError(message)

    @server.tool()
    async def slow(seconds: float, marker: str | None = None) -> str:
        """Sleep; with a `marker` file, write 'started' to it first, and 'cancelled' if cancelled."""
        if marker:
            Path(marker).write_text("started")
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            if marker:
                Path(marker).write_text("cancelled")
            raise
        return f"slept {seconds}s"

    arrived: dict[str, Any] = {"count": 0, "all": anyio.Event()}

    @server.tool()
    async def rendezvous(calls: int) -> str:
        """Wait until `calls` calls of this tool are in the server at once (a barrier), then answer."""
        arrived["count"] += 1
        if arrived["count"] >= calls:
            arrived["all"].set()
        await arrived["all"].wait()
        return "met"

    @server.tool()
    def needs_capability(capability: str, ctx: Context) -> str:
        """Refuse with -32021 unless the client declared the experimental capability `capability`."""
        declared = ctx.session.client_capabilities
        if declared is None or capability not in (declared.experimental or {}):
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message=f"This tool requires the client capability experimental.{capability}",
                data={"requiredCapabilities": {"experimental": {capability: {}}}},
            )
        return "declared"

    @server.tool()
    def crash(code: int = 3) -> str:
        """Exit the whole server process at once."""
        os._exit(code)

    @server.tool()
    def flood(lines: int = 1000, line_bytes: int = 0) -> str:
        """Write non-JSON lines straight to stdout (a misbehaving stdio server); `line_bytes` makes one long line."""
        if line_bytes:
            os.write(WIRE, b"x" * line_bytes + b"\n")
        os.write(WIRE, b"this is not JSON-RPC\n" * lines)
        return "flooded"

    @server.tool()
    def shout(text: str) -> str:
        """Write the text to stderr and return it."""
        print(f"shouting: {text}", file=sys.stderr, flush=True)
        return text.upper()

    @server.tool(name=LONG_NAME)
    def long_named() -> str:
        """A tool whose qualified name is longer than 64 characters."""
        return "long"

    @server.tool(title="Weather", icons=None)
    def weather(city: str) -> Weather:
        """Structured output with an output schema."""
        return Weather(city=city, temp_c=21.5)

    def extra() -> str:
        """A tool that comes and goes."""
        return "extra"

    @server.tool()
    async def toggle(ctx: Context) -> str:
        """Add the `extra` tool, or remove it, and tell the client the tool list changed."""
        if any(tool.name == "extra" for tool in await server.list_tools()):
            server.remove_tool("extra")
            state = "removed"
        else:
            server.add_tool(extra)
            state = "added"
        await ctx.notify_tools_changed()  # 2026-07-28 clients: subscriptions/listen
        await ctx.session.send_tool_list_changed()  # 2025-era clients: the session's notification
        return state

    @server.tool()
    def region(
        region: Annotated[str, Field(description="Also sent as Mcp-Param-Region", json_schema_extra=REGION_HEADER)],
    ) -> str:
        """Echo the region; clients of 2026-07-28 mirror it into the `Mcp-Param-Region` header (SEP-2243)."""
        return f"region={region}"

    @server.tool()
    async def blink(ctx: Context) -> str:
        """Add the `extra` tool and remove it at once, announcing the change: the list ends as it began."""
        server.add_tool(extra)
        server.remove_tool("extra")
        await ctx.notify_tools_changed()
        await ctx.session.send_tool_list_changed()
        return "blinked"

    return server


if __name__ == "__main__":
    serve(build_fixture())
