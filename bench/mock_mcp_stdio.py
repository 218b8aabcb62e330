"""The mock MCP server over stdio: newline-delimited JSON-RPC on stdin/stdout, the same tools as `bench.mock_mcp`.

Both eras, as a stdio server sees them: `server/discover` and requests carrying the 2026-07-28 `_meta` envelope
are answered with `resultType` and the server's info, `initialize` opens the 2025 handshake (a stdio connection is
its one session). Requests are answered in the order they arrive; whatever is readable is read at once and the
answers to it written with one `write`, so requests in flight together are answered together, never held back
waiting for more.

    python -m bench.mock_mcp_stdio
"""

from __future__ import annotations

import json
import os
from typing import Any

from bench.mock_mcp import (
    CAPABILITIES,
    INVALID_PARAMS,
    LEGACY,
    METHOD_NOT_FOUND,
    MODERN,
    MODERN_META,
    PARSE_ERROR,
    SERVER_INFO,
    TOOLS,
    call_tool,
)

READ_BYTES = 1 << 16


def _modern(params: dict[str, Any]) -> bool:
    meta = params.get("_meta")
    return isinstance(meta, dict) and meta.get("io.modelcontextprotocol/protocolVersion") == MODERN


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def answer(message: Any) -> dict[str, Any] | None:
    """The answer to one JSON-RPC message; None for a notification (or a response, which needs none)."""
    if not isinstance(message, dict) or "method" not in message:
        return None
    if "id" not in message:
        return None
    request_id = message["id"]
    method = message["method"]
    params = message.get("params") or {}
    if not isinstance(params, dict):
        return _error(request_id, INVALID_PARAMS, "params must be an object")
    envelope: dict[str, Any] = {"resultType": "complete", "_meta": MODERN_META} if _modern(params) else {}
    result: dict[str, Any]
    if method == "initialize":
        wanted = params.get("protocolVersion")
        version = wanted if wanted in LEGACY else LEGACY[-1]
        result = {"capabilities": CAPABILITIES, "protocolVersion": version, "serverInfo": SERVER_INFO}
    elif method == "server/discover":
        result = {"capabilities": CAPABILITIES, "supportedVersions": [MODERN], "cacheScope": "private", "ttlMs": 0}
        envelope = {"resultType": "complete", "_meta": MODERN_META}
    elif method == "tools/call":
        result = call_tool(params)
    elif method == "tools/list":
        result = {"tools": TOOLS}
        if envelope:
            result.update(ttlMs=0, cacheScope="private")
    elif method == "ping":
        result = {}
    else:
        return _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}")
    return {"jsonrpc": "2.0", "id": request_id, "result": {**result, **envelope}}


def handle(lines: list[bytes]) -> bytes:
    """The answers to complete lines, as one block to write."""
    out: list[bytes] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError:
            reply: dict[str, Any] | None = _error(None, PARSE_ERROR, "Parse error")
        else:
            reply = answer(message)
        if reply is not None:
            out.append(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
    return b"".join(out)


def serve(read_fd: int = 0, write_fd: int = 1) -> None:
    """Answer until stdin closes."""
    pending = b""
    while True:
        chunk = os.read(read_fd, READ_BYTES)
        if not chunk:
            return
        *lines, pending = (pending + chunk).split(b"\n")
        block = handle(lines)
        while block:
            written = os.write(write_fd, block)
            block = block[written:]


if __name__ == "__main__":
    serve()
