"""An MCP stdio server that will not leave: it ignores SIGTERM, and when its stdin closes it keeps running, its
output pipes open (the stream a misbehaving server leaves behind). Only SIGKILL ends it.

`python tests/servers/stubborn_server.py PIDFILE`: writes its process id to PIDFILE once it serves. Tool: `echo`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


async def serve() -> None:
    async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="echo", input_schema=TEXT)])

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> Any:
        text = str((params.arguments or {}).get("text"))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    server: Server[Any] = Server("stubborn", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(sys.argv[1]).write_text(str(os.getpid()))
    anyio.run(serve)
    while True:  # stdin closed: a well-behaved server exits here; this one stays
        time.sleep(3600)


if __name__ == "__main__":
    main()
