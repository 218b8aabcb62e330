"""One 2026-07-28 request served in the endpoint's own task, answered as the SDK's SSE-mode entry answers it.

The SDK's entry runs the handler in a task of its own, passes notifications through a memory stream, and commits
`text/event-stream` at the first notification or after `PING_INTERVAL` seconds of silence (then pings every
`PING_INTERVAL`); a handler that finishes first is answered `application/json`. `Exchange` keeps that contract with
less machinery: the handler runs in the calling task, a notification is written at once (committing the stream if
it is the first thing written), and one watcher task cancels the handler when the client goes away and pings a
committed (or long-silent) stream. The watcher is a bare asyncio task (`Watcher`), not an anyio task group:
a task group's scopes and bookkeeping cost more than the rest of the exchange, and the watcher needs none of them
(it only ever cancels the handler's scope, and is itself cancelled, then awaited, once the handler is done). It starts
`WATCH_DELAY` after the handler (or at the first ping, if sooner): most calls are answered before, and never pay for a
task; a client that goes away during the first `WATCH_DELAY` cancels its call once it is over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from mcp.server.runner import modern_error_data
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp.shared.message import MessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import JSONRPCError, JSONRPCNotification, JSONRPCResponse, ProgressToken, RequestId
from starlette.types import Receive, Send

from mcp_hub.fastpath.wire_json import sdk_json
from toolpolicy.json_text import compact_encoder

logger = logging.getLogger(__name__)

PING_INTERVAL: Final = 15.0
"""Seconds of silence after which the answer becomes an event stream, and between its keep-alive pings (the SDK's)."""
SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
PING: Final = b": ping\r\n\r\n"
WATCH_DELAY: Final = 0.1
"""Seconds into a call before its watcher starts (see the module doc); at most `PING_INTERVAL`."""
_JSON_TYPE: Final = (b"content-type", b"application/json")
BODY_FOLLOWS: Final = "isthmus.body_follows"
"""A key of an `http.response.start` message: its first body message is sent right after it, so Isthmus's server
(`isthmus.response_head`) writes the head with that body in one write of the socket; other servers ignore it. An
ASGI key, spelled here as `llm_proxy.streaming` spells it (a test holds the three spellings equal)."""
_encode = compact_encoder(check_circular=False)
"""`json.dumps(..., separators=(",", ":"))`, as the SDK writes a response, with the encoder made once. Without the
circular-reference check: what is written is a fresh JSON dump of a message, which cannot refer to itself."""


def sse_event(message: JSONRPCResponse | JSONRPCError | JSONRPCNotification) -> bytes:
    body = message.model_dump(mode="json", by_alias=True, exclude_none=True)
    return f"event: message\r\ndata: {_encode(body)}\r\n\r\n".encode()


@dataclass(eq=False)
class Exchange:
    """The `DispatchContext` of one request (the back channel is closed, as in 2026-07-28), and its response."""

    headers: Mapping[str, str] | None
    """The request's headers, which `transport` carries."""
    request_id: RequestId
    message_metadata: MessageMetadata
    send: Send
    progress_token: ProgressToken | None = None
    can_send_request: bool = field(default=False, init=False)
    committed: bool = field(default=False, init=False)
    """Whether the response has started as an event stream."""
    closed: bool = field(default=False, init=False)
    """Whether the handler is done: what is sent later (a held call's progress) is dropped, as by the SDK."""
    _cancel_requested: anyio.Event | None = field(default=None, init=False)
    _lock: asyncio.Lock | None = field(default=None, init=False)
    _quiet_until: float = field(default=0.0, init=False)
    _transport: TransportContext | None = field(default=None, init=False)

    # Made when first needed: an anyio event or lock costs more to make than most of an exchange, and most
    # exchanges write nothing before their result and are never asked whether they were cancelled.

    @property
    def transport(self) -> TransportContext:
        """The 2026-07-28 entry's transport context: no back channel, the request's headers. Few calls read it (a
        handler asking for `ctx.headers`); a frozen dataclass called with keywords costs about 8,000 Ir to make."""
        if self._transport is None:
            self._transport = TransportContext(kind="streamable-http", can_send_request=False, headers=self.headers)
        return self._transport

    @property
    def cancel_requested(self) -> anyio.Event:
        """Never set: the 2026-07-28 entry has no cancellation notice (the client goes away instead)."""
        if self._cancel_requested is None:
            self._cancel_requested = anyio.Event()
        return self._cancel_requested

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a chunk of the event stream is written."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None) -> None:
        body = dict(params) if params is not None else None
        await self._write(sse_event(JSONRPCNotification(jsonrpc="2.0", method=method, params=body)))

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.notify("notifications/progress", params)

    def start_watching(self, receive: Receive, handler: anyio.CancelScope) -> Watcher:
        """The watcher (see `watch`), due in `WATCH_DELAY`: cancelled once the handler is done, then `settle`d."""
        loop = asyncio.get_running_loop()
        self._quiet_until = loop.time() + PING_INTERVAL
        return Watcher(loop, self, receive, handler)

    async def watch(self, receive: Receive, handler: anyio.CancelScope) -> None:
        """Until cancelled: cancel `handler` when the client disconnects; ping after each silent interval.

        A watcher that fails (a ping the server could not write) cancels the handler too, as a failing task in the
        handler's task group would.
        """
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(self._quiet_until):
                        while (await receive()).get("type") != "http.disconnect":
                            pass
                except TimeoutError:
                    if loop.time() >= self._quiet_until:  # else a notice went out meanwhile: wait on from it
                        await self._write(PING)
                    continue
                handler.cancel()
                return
        except asyncio.CancelledError:
            raise
        except BaseException:
            handler.cancel()
            raise

    async def _write(self, chunk: bytes) -> None:
        async with self.lock:
            if self.closed:
                logger.debug("dropped a message for request %s: its response is written or abandoned", self.request_id)
                return
            if not self.committed:
                self.committed = True
                start = {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS, BODY_FOLLOWS: True}
                await self.send(start)  # (its first chunk is sent next: the head may go out with it)
            self._quiet_until = asyncio.get_running_loop().time() + PING_INTERVAL
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def finish(self, outcome: dict[str, Any] | Exception) -> None:
        """Write the result (or the error the SDK makes of `outcome`): JSON, or the stream's last event."""
        body: dict[str, Any]
        if isinstance(outcome, Exception):
            error = JSONRPCError(jsonrpc="2.0", id=self.request_id, error=modern_error_data(outcome))
            if self.committed:
                async with self.lock:  # after a notice still being written
                    await self.send({"type": "http.response.body", "body": sse_event(error), "more_body": False})
                return
            status = ERROR_CODE_HTTP_STATUS.get(error.error.code, 200)
            body = error.model_dump(mode="json", by_alias=True, exclude_none=True)
        elif self.committed:
            result = JSONRPCResponse(jsonrpc="2.0", id=self.request_id, result=outcome)
            async with self.lock:
                await self.send({"type": "http.response.body", "body": sse_event(result), "more_body": False})
            return
        else:
            # What dumping a `JSONRPCResponse` gives: the result is in its wire form already (the kernel's JSON dump).
            status, body = 200, {"jsonrpc": "2.0", "id": self.request_id, "result": outcome}
        # What starlette's `Response(..., media_type="application/json")` sends, without building one.
        content = sdk_json(body)
        headers = [(b"content-length", str(len(content)).encode("latin-1")), _JSON_TYPE]
        await self.send({"type": "http.response.start", "status": status, "headers": headers, BODY_FOLLOWS: True})
        await self.send({"type": "http.response.body", "body": content})


class Watcher:
    """An exchange's watcher task, started by a timer `WATCH_DELAY` (or `PING_INTERVAL`, if shorter) from now."""

    __slots__ = ("_handle", "task")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, exchange: Exchange, receive: Receive, handler: anyio.CancelScope
    ) -> None:
        self.task: asyncio.Task[None] | None = None
        delay = min(WATCH_DELAY, PING_INTERVAL)
        self._handle = loop.call_later(delay, self._start, loop, exchange, receive, handler)

    def _start(
        self, loop: asyncio.AbstractEventLoop, exchange: Exchange, receive: Receive, handler: anyio.CancelScope
    ) -> None:
        self.task = loop.create_task(exchange.watch(receive, handler))

    def cancel(self) -> None:
        """Stop the watcher: not started, it never will be; started, its task is cancelled (then `settle` it)."""
        self._handle.cancel()
        if self.task is not None:
            self.task.cancel()


async def settle(watcher: Watcher) -> None:
    """Wait for a cancelled watcher to end; raise what it failed with, if anything (not its cancellation)."""
    task = watcher.task
    if task is None:
        return
    if not task.done():
        await asyncio.wait((task,))
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
