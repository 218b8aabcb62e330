"""A mock MCP server over Streamable HTTP that answers in plain JSON, in both protocol eras, with cheap tools.

Hand-rolled on `bench.httpserver` because the official SDK's server is the bottleneck: on this machine it serves
about a tenth of what this one does (the benchmark measures both, see `bench.sdk_mcp`), which is less than a
gateway in front of it can pass on. It implements the subset a gateway needs, the way the SDK's server does:

- 2026-07-28 (modern): `server/discover`, `tools/list`, `tools/call`, each request standalone, each result with
  `resultType` and the server's info in `_meta`;
- 2025-era (legacy): `initialize` opens a session (`Mcp-Session-Id`), `notifications/*` get 202, later requests
  need the session (unknown: 404, missing: 400), `DELETE` ends it; `GET` (the optional server-to-client stream)
  gets 405, which clients take as "no stream offered".

Tools: `echo(text)` returns the text, `add(a, b)` the sum; both with structured content.

    python -m bench.mock_mcp --port 18090
"""

from __future__ import annotations

import argparse
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.httpserver import Request, response, run

MODERN = "2026-07-28"
LEGACY = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
SERVER_INFO = {"name": "bench-mock-mcp", "version": "1.0.0"}
MODERN_META = {"io.modelcontextprotocol/serverInfo": SERVER_INFO}
TOOLS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "description": "Return the text.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "outputSchema": {"type": "object", "properties": {"result": {"type": "string"}}, "required": ["result"]},
    },
    {
        "name": "add",
        "description": "Add two numbers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
        "outputSchema": {"type": "object", "properties": {"result": {"type": "number"}}, "required": ["result"]},
    },
]
CAPABILITIES = {"tools": {"listChanged": False}}
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INVALID_REQUEST = -32600
PARSE_ERROR = -32700


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _result(request_id: Any, result: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
    return response(200, _dumps({"jsonrpc": "2.0", "id": request_id, "result": result}), headers=headers)


def _error(status: int, request_id: Any, code: int, message: str) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return response(status, _dumps(body))


def _text_result(value: Any) -> dict[str, Any]:
    text = value if isinstance(value, str) else json.dumps(value)
    return {"content": [{"type": "text", "text": text}], "isError": False, "structuredContent": {"result": value}}


def _tool_error(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


def call_tool(params: dict[str, Any]) -> dict[str, Any]:
    """The result of `tools/call`: tool failures are results with `isError`, as the spec asks."""
    name = params.get("name")
    arguments = params.get("arguments") or {}
    if not isinstance(arguments, dict):
        return _tool_error("arguments must be an object")
    if name == "echo":
        text = arguments.get("text")
        return _text_result(text) if isinstance(text, str) else _tool_error("echo needs a string 'text'")
    if name == "add":
        a, b = arguments.get("a"), arguments.get("b")
        if isinstance(a, int | float) and isinstance(b, int | float):
            return _text_result(a + b)
        return _tool_error("add needs numbers 'a' and 'b'")
    return _tool_error(f"Unknown tool: {name}")


@dataclass
class MockMcpServer:
    """The request handler; `sessions` holds the open legacy sessions."""

    path: str = "/mcp"
    sessions: set[str] = field(default_factory=set)
    calls: int = 0

    def __call__(self, request: Request) -> bytes:
        if request.path.rstrip("/") != self.path:
            return _error(404, None, INVALID_REQUEST, f"no MCP endpoint at {request.path}")
        session = request.headers.get("mcp-session-id")
        if request.method == "GET":
            return response(405, b"", headers={"allow": "POST, DELETE"})
        if request.method == "DELETE":
            if session is None or session not in self.sessions:
                return _error(404, None, INVALID_REQUEST, "Session not found")
            self.sessions.discard(session)
            return response(200)
        if request.method != "POST":
            return response(405, b"", headers={"allow": "POST, DELETE"})
        try:
            message = json.loads(request.body)
        except ValueError:
            return _error(400, None, PARSE_ERROR, "Parse error: the body is not JSON")
        if (
            not isinstance(message, dict)
            or message.get("jsonrpc") != "2.0"
            or not isinstance(message.get("method"), str)
        ):
            return _error(400, None, INVALID_REQUEST, "Invalid Request: expected one JSON-RPC 2.0 message")
        method: str = message["method"]
        request_id = message.get("id")
        params = message.get("params") or {}
        if not isinstance(params, dict):
            return _error(400, request_id, INVALID_PARAMS, "params must be an object")
        if "id" not in message:  # a notification: nothing to answer
            return response(202)
        if self._modern(request, params):
            return self._answer_modern(method, request_id, params)
        if method == "initialize":
            return self._initialize(request_id, params)
        if session is None:
            return _error(400, request_id, INVALID_REQUEST, "Bad Request: Missing session ID")
        if session not in self.sessions:
            return _error(404, request_id, INVALID_REQUEST, "Session not found")
        return self._answer(method, request_id, params, None, {"mcp-session-id": session})

    def _modern(self, request: Request, params: dict[str, Any]) -> bool:
        if request.headers.get("mcp-protocol-version") == MODERN:
            return True
        meta = params.get("_meta")
        return isinstance(meta, dict) and meta.get("io.modelcontextprotocol/protocolVersion") == MODERN

    def _initialize(self, request_id: Any, params: dict[str, Any]) -> bytes:
        wanted = params.get("protocolVersion")
        version = wanted if wanted in LEGACY else LEGACY[-1]
        session = uuid.uuid4().hex
        self.sessions.add(session)
        result = {"capabilities": CAPABILITIES, "protocolVersion": version, "serverInfo": SERVER_INFO}
        return _result(request_id, result, {"mcp-session-id": session})

    def _answer_modern(self, method: str, request_id: Any, params: dict[str, Any]) -> bytes:
        if method == "server/discover":
            result = {
                "cacheScope": "private",
                "capabilities": CAPABILITIES,
                "resultType": "complete",
                "supportedVersions": [MODERN],
                "ttlMs": 0,
                "_meta": MODERN_META,
            }
            return _result(request_id, result)
        if method == "initialize":
            return _error(400, request_id, INVALID_REQUEST, "initialize is not part of protocol version 2026-07-28")
        return self._answer(method, request_id, params, {"resultType": "complete", "_meta": MODERN_META}, None)

    def _answer(
        self,
        method: str,
        request_id: Any,
        params: dict[str, Any],
        envelope: dict[str, Any] | None,
        headers: dict[str, str] | None,
    ) -> bytes:
        if method == "tools/call":
            self.calls += 1
            result = call_tool(params)
        elif method == "tools/list":
            result = {"tools": TOOLS}
            if envelope is not None:
                result.update(ttlMs=0, cacheScope="private")
        elif method == "ping" and envelope is None:
            result = {}
        else:
            return _error(404 if envelope else 200, request_id, METHOD_NOT_FOUND, f"Method not found: {method}")
        return _result(request_id, {**result, **(envelope or {})}, headers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    run(MockMcpServer(), args.host, args.port)


if __name__ == "__main__":
    main()
