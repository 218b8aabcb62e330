"""One stdio upstream's pipes, shared by the MCP SDK's client and the `tools/call` fast path (`fast_call.py`).

Everything written to the child's stdin goes through one `Outbox`: the SDK's messages (serialized as its transport
serializes them) and the fast path's request bodies, in the order they were handed in. Its writer takes whatever has
piled up since its last write and writes it at once, so sixteen calls in flight cost one write and one drain, not
sixteen. A writer that falls behind by `HIGH_WATER` bytes holds its senders back, as the SDK's transport does with
each of its writes.

`StdioLink` is the fast path's side: a call registers its request id (from the SDK session's own sequence, so ids
never collide with the SDK's) and writes its body; the reader of stdout (`stdio.py`) hands it the response with that
id before the SDK's dispatcher sees it (`take_response`), so one reader demultiplexes every call in flight by id.
Every other line (notices, the server's own requests, the SDK's responses) goes to the SDK as before, the relay's
observer included. A call whose caller goes away sends `notifications/cancelled`, as the SDK's dispatcher does; a
connection that ends fails the calls in flight with `CONNECTION_CLOSED`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

import mcp_types as types
import pydantic_core
from mcp.shared.exceptions import MCPError

HIGH_WATER: Final = 1024 * 1024
"""Bytes waiting to be written beyond which a sender waits for the writer (backpressure)."""


def _closed() -> MCPError:
    return MCPError(types.CONNECTION_CLOSED, "Connection closed")


class Outbox:
    """What waits to be written to the child's stdin, taken by one writer in batches."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.closed = False

    async def send(self, data: bytes) -> None:
        """Queue `data` (whole lines) for the writer; raises `CONNECTION_CLOSED` once the pipe is closed."""
        if self.closed:
            raise _closed()
        self.put_nowait(data)
        if self._size > HIGH_WATER:
            self._drained.clear()
            await self._drained.wait()
            if self.closed:
                raise _closed()

    def put_nowait(self, data: bytes) -> None:
        """Queue `data` without waiting for the writer (dropped once the pipe is closed)."""
        if self.closed:
            return
        self._chunks.append(data)
        self._size += len(data)
        self._ready.set()

    async def take(self) -> bytes:
        """Everything queued so far, in order, once there is something (the writer's side)."""
        while not self._chunks:
            self._ready.clear()
            self._drained.set()
            await self._ready.wait()
        data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks.clear()
        self._size = 0
        return data

    def written(self) -> None:
        """The writer wrote the last batch: senders held back may go on."""
        if self._size <= HIGH_WATER:
            self._drained.set()

    def close(self) -> None:
        self.closed = True
        self._chunks.clear()
        self._size = 0
        self._drained.set()


class StdioLink:
    """The fast path's calls in flight on one stdio connection."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        """Request id → the future its response settles (ids are the SDK session's, always integers)."""
        self._closed = False

    async def call(self, request_id: int, body: bytes) -> dict[str, Any]:
        """Write one request (`body`, without its newline) and wait for the JSON-RPC response with its id."""
        if self._closed:
            raise _closed()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self.outbox.closed:
            raise _closed()
        self.pending[request_id] = future
        written = True  # `send` queues at once: a call cancelled while it waits for the writer was issued all the same
        try:
            await self.outbox.send(body + b"\n")
            return await future
        except asyncio.CancelledError:
            if written:
                # The SDK dispatcher's courtesy cancel, so the server stops the work; queued, never awaited.
                params = {"requestId": request_id, "reason": "caller cancelled"}
                notice = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}
                self.outbox.put_nowait(json.dumps(notice, separators=(",", ":")).encode() + b"\n")
            raise
        finally:
            self.pending.pop(request_id, None)

    def take_response(self, line: bytes) -> bool:
        """Whether `line` is the response to a fast call in flight (then that call has it); else the SDK's."""
        try:
            message = pydantic_core.from_json(line, allow_inf_nan=True)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or "method" in message:
            return False
        request_id = message.get("id")
        if type(request_id) is not int:
            return False
        if not isinstance(message.get("result"), dict) and not isinstance(message.get("error"), dict):
            return False  # not a response the SDK would take either: its garbage counting decides
        future = self.pending.get(request_id)
        if future is None:
            return False
        if not future.done():
            future.set_result(message)
        return True

    def close(self) -> None:
        """The connection ended: every call in flight fails with `CONNECTION_CLOSED`."""
        self._closed = True
        for future in self.pending.values():
            if not future.done():
                future.set_exception(_closed())
        self.pending.clear()
