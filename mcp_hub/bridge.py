"""`isthmus connect`: a stdio-to-HTTP bridge, so a client that only runs stdio servers uses the gateway's `/mcp`.

The bridge relays JSON-RPC messages unchanged (nothing is parsed into typed results, so nothing is lost) between
its stdin/stdout and the gateway's Streamable HTTP endpoint, presenting the key on every request. It serves both
eras, as the client chooses: a 2025-era client's `initialize` opens a session (the SDK transport keeps its
`Mcp-Session-Id` and standalone stream), a 2026-07-28 client's requests carry their own `_meta`. The HTTP headers
that Streamable HTTP wants beside the body (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`) are
derived from each message, as the SDK's own client session would set them.

When the gateway cannot be reached or has forgotten the session (it restarted), `bridge_link.GatewayLink`
answers or re-opens it, so the client is never left waiting.

Run `python -m mcp_hub.bridge --url http://127.0.0.1:8080/mcp` with the key in `$ISTHMUS_API_KEY` (or `--key`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
    find_invalid_x_mcp_header,
    mcp_param_headers,
    x_mcp_header_map,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_hub.bridge_link import GatewayLink

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8080/mcp"
KEY_ENV = "ISTHMUS_API_KEY"


class _Headers:
    """What the bridge learns from the traffic to set each request's HTTP headers."""

    def __init__(self) -> None:
        self.legacy_version: str | None = None
        self._initialize_ids: set[types.RequestId] = set()
        self._tools_list_ids: set[types.RequestId] = set()
        self._param_headers: dict[str, dict[tuple[str, ...], str]] = {}

    def outgoing(self, message: types.JSONRPCMessage) -> dict[str, str] | None:
        if not isinstance(message, types.JSONRPCRequest | types.JSONRPCNotification):
            return self._legacy()
        params: Mapping[str, Any] = message.params or {}
        meta = params.get("_meta") if isinstance(params.get("_meta"), Mapping) else None
        version = meta.get(types.PROTOCOL_VERSION_META_KEY) if meta is not None else None
        if isinstance(message, types.JSONRPCRequest):
            if message.method == "initialize":
                self._initialize_ids.add(message.id)
                return None
            if message.method == "tools/list":
                self._tools_list_ids.add(message.id)
        if version not in MODERN_PROTOCOL_VERSIONS:
            return self._legacy()
        headers = {MCP_PROTOCOL_VERSION_HEADER: str(version), MCP_METHOD_HEADER: message.method}
        name = params.get(NAME_BEARING_METHODS.get(message.method, ""))
        if isinstance(name, str):
            headers[MCP_NAME_HEADER] = encode_header_value(name)
            arguments = params.get("arguments")
            if message.method == "tools/call" and isinstance(arguments, Mapping):
                headers.update(mcp_param_headers(self._param_headers.get(name, {}), arguments))
        return headers

    def incoming(self, message: types.JSONRPCMessage) -> None:
        if not isinstance(message, types.JSONRPCResponse):
            return
        if message.id in self._initialize_ids:
            self._initialize_ids.discard(message.id)
            version = message.result.get("protocolVersion")
            self.legacy_version = version if isinstance(version, str) else None
        elif message.id in self._tools_list_ids:
            self._tools_list_ids.discard(message.id)
            for tool in message.result.get("tools") or []:
                if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                    schema = tool.get("inputSchema")
                    if find_invalid_x_mcp_header(schema) is None:
                        self._param_headers[tool["name"]] = x_mcp_header_map(schema)

    def _legacy(self) -> dict[str, str] | None:
        return {MCP_PROTOCOL_VERSION_HEADER: self.legacy_version} if self.legacy_version else None


async def run_bridge(url: str, key: str) -> None:
    """Relay this process's stdin/stdout to the gateway at `url` as the virtual key `key`, until stdin closes."""
    headers = _Headers()
    # No read timeout: a listen stream or a long tool call may stay quiet; the gateway times calls out itself.
    link = GatewayLink(url)
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30.0, read=None), transport=link
    )
    async with (
        http,
        streamable_http_client(url, http_client=http) as (remote_read, remote_write),
        stdio_server() as (local_read, local_write),
        local_write,  # closed first on the way out, so the stdio writer (and the process) can finish
        anyio.create_task_group() as tg,
    ):

        async def to_gateway() -> None:
            async for item in local_read:
                if isinstance(item, Exception):
                    logger.warning("isthmus connect: the client sent something that is not JSON-RPC: %s", item)
                    error = types.ErrorData(code=types.PARSE_ERROR, message="Parse error")
                    await local_write.send(SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=None, error=error)))
                    continue
                metadata = ClientMessageMetadata(headers=headers.outgoing(item.message))
                await remote_write.send(SessionMessage(item.message, metadata=metadata))
            tg.cancel_scope.cancel()  # the client closed stdin: it is done

        async def to_client() -> None:
            async for item in remote_read:
                if isinstance(item, Exception):
                    logger.warning("isthmus connect: error from the gateway: %s", item)
                    continue
                headers.incoming(item.message)
                await local_write.send(item)
            tg.cancel_scope.cancel()

        tg.start_soon(to_gateway)
        tg.start_soon(to_client)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="isthmus connect", description="stdio-to-HTTP bridge to the gateway's /mcp")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the gateway's MCP endpoint (default {DEFAULT_URL})")
    parser.add_argument("--key", help=f"the virtual key (default: ${KEY_ENV})")
    args = parser.parse_args(argv)
    key = args.key or os.environ.get(KEY_ENV)
    if not key:
        parser.error(f"give --key or set {KEY_ENV}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="isthmus connect: %(message)s")
    anyio.run(run_bridge, args.url, key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
