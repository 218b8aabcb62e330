"""The same MCP tools as `bench.mock_mcp`, served by the official SDK (`MCPServer`, JSON responses) on uvicorn.

The benchmark measures it beside the hand-rolled mock to show why the mock is hand-rolled: the SDK server's
throughput is below what a gateway in front of it must be able to pass on.

    python -m bench.sdk_mcp --port 18091
"""

from __future__ import annotations

import argparse

import uvicorn
from mcp.server import MCPServer

server = MCPServer("bench-sdk-mcp", version="1.0.0")


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = server.streamable_http_app(json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning")


if __name__ == "__main__":
    main()
