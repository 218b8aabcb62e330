"""An upstream written with the SDK's low-level `Server`, implementing only some of what it declares.

It declares `tools` and `resources` (the low-level server derives capabilities from the handlers it has) but has no
`resources/templates/list` handler, so that listing answers -32601, as many low-level-SDK servers do; it has no
prompts at all. Tools: `add` and `echo`.

`python tests/servers/bare_server.py [--http PORT] [--bad-tools] [--overclaim]`. `--bad-tools` adds two tools the
hub must skip: `bad_type`, whose input schema is a well-formed object but not a valid JSON Schema, and (stdio only,
written past the SDK, which would refuse to send it) `not_an_object`, whose `inputSchema` is a string.
`--overclaim` also declares `logging` and `completions`, with no handler for either (both answer -32601).
"""

from __future__ import annotations

import argparse
from types import TracebackType
from typing import Any, Self

import anyio
import mcp_types as types
import uvicorn
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import WriteStream
from mcp.shared.message import SessionMessage

Context = ServerRequestContext[Any, Any]
NUMBERS = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}
TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
GOOD_TOOLS = [
    types.Tool(name="add", description="Add two integers.", input_schema=NUMBERS),
    types.Tool(name="echo", description="Return the text unchanged.", input_schema=TEXT),
]
BAD_TYPE = types.Tool(
    name="bad_type", input_schema={"type": "object", "properties": {"n": {"type": "a kind of number"}}}
)
README = types.Resource(uri="bare://readme", name="readme", mime_type="text/plain")


class Overclaiming(Server[Any]):
    """Declares more than it implements."""

    def get_capabilities(self, *args: Any, **kwargs: Any) -> types.ServerCapabilities:
        declared = super().get_capabilities(*args, **kwargs)
        more = {"logging": types.LoggingCapability(), "completions": types.CompletionsCapability()}
        return declared.model_copy(update=more)


def build(*, bad_tools: bool, overclaim: bool) -> Server[Any]:
    tools = [*GOOD_TOOLS, BAD_TYPE] if bad_tools else GOOD_TOOLS

    async def list_tools(ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Context, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = params.arguments or {}
        if params.name == "add":
            total = int(arguments["a"]) + int(arguments["b"])
            return types.CallToolResult(content=[types.TextContent(type="text", text=str(total))])
        if params.name == "echo":
            return types.CallToolResult(content=[types.TextContent(type="text", text=str(arguments["text"]))])
        return types.CallToolResult(content=[types.TextContent(type="text", text="no such tool")], is_error=True)

    async def list_resources(ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[README])

    async def read_resource(ctx: Context, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        text = types.TextResourceContents(uri=params.uri, mime_type="text/plain", text="a bare server")
        return types.ReadResourceResult(contents=[text])

    return (Overclaiming if overclaim else Server)(
        "bare",
        version="1.0.0",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


class WithRawTool:
    """The server's write stream, adding a tool with a string `inputSchema` to every `tools/list` answer."""

    def __init__(self, inner: WriteStream[SessionMessage]) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage, /) -> None:
        message = item.message
        if isinstance(message, types.JSONRPCResponse) and isinstance(message.result.get("tools"), list):
            tools = [*message.result["tools"], {"name": "not_an_object", "inputSchema": "not an object"}]
            item = SessionMessage(message.model_copy(update={"result": {**message.result, "tools": tools}}))
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def serve_stdio(server: Server[Any], *, bad_tools: bool) -> None:
    async with stdio_server() as (read, write):
        out: WriteStream[SessionMessage] = WithRawTool(write) if bad_tools else write
        await server.run(read, out, server.create_initialization_options())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve Streamable HTTP on 127.0.0.1:PORT/mcp")
    parser.add_argument("--bad-tools", action="store_true", help="also list tools with invalid schemas")
    parser.add_argument("--overclaim", action="store_true", help="also declare logging and completions")
    args = parser.parse_args()
    server = build(bad_tools=args.bad_tools, overclaim=args.overclaim)
    if args.http is not None:
        uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=args.http, log_level="warning")
    else:
        anyio.run(lambda: serve_stdio(server, bad_tools=args.bad_tools))


if __name__ == "__main__":
    main()
