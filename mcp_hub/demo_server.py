"""A small MCP server to try the hub with, served by the quickstart: tools, a resource, a template, a prompt.

Run it over stdio (`python -m mcp_hub.demo_server`), Streamable HTTP (`--http PORT`) or legacy HTTP+SSE
(`--sse PORT`); the HTTP modes bind 127.0.0.1 only. It serves both protocol eras.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
    ToolAnnotations,
)

COLORS = ("blue", "green", "red")


def build_server(name: str = "isthmus-demo") -> MCPServer:
    """The demo server; the test fixture server adds its misbehaving tools to it."""
    server = MCPServer(name, version="1.0.0", instructions="A demo server: arithmetic, echo and progress.")

    @server.tool(title="Add two integers", annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    async def progress(steps: int, ctx: Context) -> str:
        """Count to `steps`, reporting progress at each step."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step} of {steps}")
        return f"done after {steps} steps"

    @server.resource("demo://readme", name="readme", mime_type="text/plain")
    def readme() -> str:
        """What this server is."""
        return "This is the Isthmus demo MCP server."

    @server.resource("demo://colors/{color}", name="color", mime_type="text/plain")
    def color(color: str) -> str:
        """One color's description."""
        return f"{color} is a fine color"

    @server.prompt()
    def greet(person: str, color: str = "blue") -> str:
        """Greet someone in a color."""
        return f"Say hello to {person} in {color}."

    @server.completion()  # type: ignore[no-untyped-call, untyped-decorator]  # the SDK's decorator is untyped
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if argument.name == "color":
            return Completion(values=[c for c in COLORS if c.startswith(argument.value)])
        return None

    return server


def serve(server: MCPServer, argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--http", type=int, metavar="PORT", help="serve Streamable HTTP on 127.0.0.1:PORT/mcp")
    mode.add_argument("--sse", type=int, metavar="PORT", help="serve legacy HTTP+SSE on 127.0.0.1:PORT/sse")
    args = parser.parse_args(argv)
    if args.http is not None:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    elif args.sse is not None:
        server.run("sse", host="127.0.0.1", port=args.sse)
    else:
        server.run()


def main() -> None:
    serve(build_server())


if __name__ == "__main__":
    main()
