"""The fast path of a 2025-era session: `tools/call` and `tools/list` on an `initialize`d `Mcp-Session-Id`.

Through the SDK, each such POST costs a memory stream to the session's dispatcher, a task for the handler, a request
stream per call, a task group for the response and sse_starlette's four tasks (stream, ping, disconnect, exit signal),
and the JSON-RPC message parsed and validated again. `SessionCalls.serve` answers the same request in the POST's own
task, with the session's own `Connection` and dispatcher, and writes the event stream itself:

- What it takes (all decided before any work, else the SDK serves the request unchanged): the fast path on
  (`mcp.fast_path`), the manager in SSE mode, a session this process serves whose transport is running (not
  terminated, not idling out), a body that is ONE JSON-RPC request for `tools/call` or `tools/list` with object
  `params`, and what the SDK's transport checks before dispatch: Host/Origin, `Accept` naming JSON and SSE, a JSON
  `Content-Type` (its checks, on the headers the endpoint read once: `transport_checks.py`). The manager has
  already matched the session id and the key that opened it (`sessions.py`).
- The answer is what the SDK writes for the session: `text/event-stream` with the session's id, a priming event
  (numbered in the session's event store, with `retry`) for 2025-11-25 clients when streams are resumable, then the
  response as an event numbered in the same store, so `Last-Event-ID` replays it as it would the SDK's.
- The kernel is the SDK's (`ServerRunner._on_request` over the session's `Connection`, as `HubRunner`, which validates
  the params once (`kernel.py`) and writes a plain tool result without validating it again: `plain_results.py`):
  negotiated version, client capabilities, log level, middleware (tracing, error rendering), the hub's handlers
  (governance, audit, guardrails, the relay). The response's JSON is made once, for the session's event store and
  the event both.
- What a call sends its client before the result (progress, log notices, the relay's sampling, elicitation and roots
  questions) goes out through the session's dispatcher as the SDK sends it (`related_request_id`, so the transport
  numbers it in the event store and the shared-session routing sees it), and the transport's router delivers it to
  this call, which stands in its request stream (`_request_streams`) and writes it at once. Once a call has sent
  anything that way, its result takes the same way, so nothing overtakes what went before; a call that sent nothing
  (most) writes its result directly.
- `notifications/cancelled` finds the call in the dispatcher's in-flight table and cancels it, which then answers
  `REQUEST_CANCELLED` as the SDK's transport does. The session ending (DELETE, idle, shutdown) cancels its calls and
  ends their streams. The upstream's polling close (`polling.py`) ends the call's stream while the call runs on, and
  its result is then stored for the client's resumption, as is the result of a call whose client went away (the
  SDK does not cancel a 2025-era call when its client disconnects either). Keep-alive pings as sse_starlette's,
  every 15 s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, cast

import anyio
import pydantic_core
from mcp.server.connection import Connection
from mcp.server.runner import ServerRunner
from mcp.server.streamable_http import (
    MCP_SESSION_ID_HEADER,
    EventMessage,
    StreamableHTTPServerTransport,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.dispatcher import CallOptions, coerce_request_id
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.jsonrpc_dispatcher import (
    JSONRPCDispatcher,
    _InFlight,
    _JSONRPCDispatchContext,
    handler_exception_to_error_data,
    progress_token_from_params,
)
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCResponse,
    ProgressToken,
    RequestId,
)
from mcp_types.version import is_version_at_least
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from mcp_hub.fastpath import FastPath
from mcp_hub.fastpath.eligible import envelope
from mcp_hub.fastpath.exchange import BODY_FOLLOWS
from mcp_hub.fastpath.kernel import HubRunner
from mcp_hub.fastpath.transport_checks import accepts, json_content, security_refuses
from mcp_hub.request_headers import request_headers
from mcp_hub.resume import EncodedEventStore, message_json
from mcp_hub.scopes import cancel_scope

logger = logging.getLogger(__name__)

PING_INTERVAL: Final = 15.0
"""Seconds between keep-alive comments on a call's stream (sse_starlette's default, which the SDK keeps)."""
_SEP: Final = "\r\n"
_TRANSPORT: Final = TransportContext(kind="jsonrpc", can_send_request=True)
"""What the session's dispatcher builds for a POST in SSE mode (its default builder, `can_send_request` stamped)."""


def event_bytes(message: JSONRPCMessage, event_id: str | None) -> bytes:
    """The SSE event the SDK's transport writes for `message` (`_create_event_data`, encoded by sse_starlette)."""
    return event_frame(message_json(message), event_id)


def response_json(request_id: RequestId, result: dict[str, Any]) -> str | None:
    """`message_json(JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result))` of a JSON result, without the
    model: its fields in their order, each value as pydantic writes it. None for text that is no Unicode (a lone
    surrogate, which the model's validation replaces): that one is the model's to write."""
    try:
        return pydantic_core.to_json({"jsonrpc": "2.0", "id": request_id, "result": result}).decode()
    except pydantic_core.PydanticSerializationError:
        return None


def event_frame(data: str, event_id: str | None) -> bytes:
    """`event_bytes` of a message whose JSON is `data`."""
    head = f"id: {event_id}{_SEP}" if event_id is not None else ""
    return f"{head}event: message{_SEP}data: {data}{_SEP}{_SEP}".encode()


def priming_bytes(event_id: str, retry_ms: int | None) -> bytes:
    """The SDK's priming event: an id, empty data and the `retry` hint."""
    retry = f"retry: {retry_ms}{_SEP}" if retry_ms is not None else ""
    return f"id: {event_id}{_SEP}data: {_SEP}{retry}{_SEP}".encode()


def sse_headers(session_id: str) -> list[tuple[bytes, bytes]]:
    """The headers of the SDK's `EventSourceResponse` for a session's POST, in its order."""
    return [
        (b"cache-control", b"no-cache, no-transform"),
        (b"connection", b"keep-alive"),
        (b"content-type", b"text/event-stream"),
        (MCP_SESSION_ID_HEADER.encode("latin-1"), session_id.encode("latin-1")),
        (b"x-accel-buffering", b"no"),
    ]


class SessionCalls:
    """The sessions this process serves (their `Connection`s) and the fast-path calls running in each."""

    def __init__(self, fast_path: FastPath) -> None:
        self.fast_path = fast_path
        """The endpoint's switch (`mcp.fast_path`): off, every session request goes to the SDK."""
        self._connections: dict[str, Connection] = {}
        self._live: dict[str, set[SessionCall]] = {}

    def attach(self, session_id: str, connection: Connection) -> None:
        """A session's task started serving `connection`."""
        self._connections[session_id] = connection

    def detach(self, session_id: str) -> None:
        """The session ended: its calls are cancelled and their streams ended, as the SDK's dispatcher ends them."""
        self._connections.pop(session_id, None)
        for call in self._live.pop(session_id, ()):
            call.session_ended()

    async def serve(
        self,
        manager: StreamableHTTPSessionManager,
        session_id: str,
        decoded: Any,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> bool:
        """Serve a session's POST and return True, or return False having done nothing (the SDK serves it)."""
        if not self.fast_path.enabled or manager.json_response:
            return False
        found = envelope(decoded)
        connection = self._connections.get(session_id)
        transport = manager._server_instances.get(session_id)
        if found is None or connection is None or transport is None:
            return False
        headers = request_headers(scope)
        if security_refuses(transport._security, headers):
            return False
        has_json, has_sse = accepts(headers)
        if not (has_json and has_sse) or not json_content(transport, headers):
            return False
        request_id, method, params = found
        dispatcher = connection.outbound
        if not isinstance(dispatcher, JSONRPCDispatcher) or not _running(transport):
            return False  # (checked last: from here to holding the session open below, nothing awaits)
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER, DEFAULT_NEGOTIATED_VERSION)
        request = Request(scope, receive)
        call = SessionCall(
            transport, session_id, request, version, request_id, send, dispatcher, progress_token_from_params(params)
        )
        live = self._live.setdefault(session_id, set())
        live.add(call)
        idle = transport.idle_scope if transport._idle_timeout is not None else None
        if idle is not None:  # a request in flight holds the session open, as `handle_request` counts it
            transport._requests_in_flight += 1
            idle.deadline = float("inf")
        try:
            await call.run(HubRunner(manager.app, connection, manager._lifespan_state), method, params)
        finally:
            live.discard(call)
            if not live and self._live.get(session_id) is live:
                del self._live[session_id]
            if idle is not None:
                transport._requests_in_flight -= 1
                if not transport._requests_in_flight and transport._idle_timeout is not None:
                    idle.deadline = anyio.current_time() + transport._idle_timeout
        return True


def _running(transport: StreamableHTTPServerTransport) -> bool:
    idle = transport.idle_scope
    return not transport.is_terminated and transport._write_stream is not None and not (idle and idle.cancel_called)


class SessionCall:
    """One request's `DispatchContext`, its place in the transport's request streams, and its event stream."""

    def __init__(
        self,
        transport: StreamableHTTPServerTransport,
        session_id: str,
        request: Request,
        version: str,
        request_id: RequestId,
        send: Send,
        dispatcher: JSONRPCDispatcher[Any],
        progress_token: ProgressToken | None,
    ) -> None:
        self.http = transport
        self.session_id = session_id
        self.request_id = request_id
        self.stream_id = str(request_id)
        self.send = send
        self.dispatcher = dispatcher
        self._progress_token = progress_token
        self.version = version
        """The request's `MCP-Protocol-Version` (the SDK's default without one)."""
        self.resumable = transport._event_store is not None and is_version_at_least(self.version, "2025-11-25")
        # By position (the SDK dataclass's field order, held by `test_fast_path_objects.py`): a class called with
        # keywords builds a dict of them, five here, on every call.
        self.message_metadata = ServerMessageMetadata(
            None,  # related_request_id
            request,  # request_context
            self._close_stream if self.resumable else None,  # close_sse_stream
            self._close_standalone if self.resumable else None,  # close_standalone_sse_stream
            partial(transport._terminate_unanswered_request, request_id),  # on_request_unanswered
            True,  # can_send_request
        )
        self.closed = False
        """Whether the handler is done (the SDK's `dctx.close()`): what it sends later is dropped."""
        self.streamed = False
        """Whether anything went to the client through the dispatcher: the result must then follow the same way."""
        self.committed = False
        self.ended = False
        self._priming = b""
        self._cancel_requested: anyio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._finished: asyncio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        self._session_gone = False
        self._pinger: asyncio.Task[None] | None = None
        self._ending: asyncio.Task[None] | None = None

    # The `DispatchContext` the kernel sees (`_JSONRPCDispatchContext`'s behaviour).

    @property
    def transport(self) -> TransportContext:
        return _TRANSPORT

    @property
    def can_send_request(self) -> bool:
        return not self.closed

    @property
    def cancel_requested(self) -> anyio.Event:
        """Set by the dispatcher on the client's `notifications/cancelled` for this request."""
        if self._cancel_requested is None:
            self._cancel_requested = anyio.Event()
        return self._cancel_requested

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None) -> None:
        if self.closed:
            logger.debug("dropped %s: dispatch context closed", method)
            return
        self.streamed = True
        await self.dispatcher.notify(method, params, opts, _related_request_id=self.request_id)

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        if not self.can_send_request:
            raise NoBackChannelError(method)
        self.streamed = True
        return await self.dispatcher.send_raw_request(method, params, opts, _related_request_id=self.request_id)

    progress = _JSONRPCDispatchContext.progress  # the SDK's own: `notifications/progress` with `_progress_token`

    def close(self) -> None:
        """The request stream's `close()` (`close_sse_stream`): the SDK's SSE response ends there and then."""
        if not self.ended:
            self.ended_soon()

    # The request stream the transport's router sends this request's messages to.

    async def aclose(self) -> None:
        await self._end()

    async def send_event(self, event: EventMessage) -> None:
        self.streamed = True  # whatever wrote it may have more on the way: the answer must queue behind it
        final = isinstance(event.message, JSONRPCResponse | JSONRPCError)
        await self._write(event_bytes(event.message, event.event_id), final=final)

    # Serving it.

    async def run(self, runner: ServerRunner[Any], method: str, params: dict[str, Any]) -> None:
        transport = self.http
        priming = await transport._mint_priming_event(self.stream_id, self.version)
        if priming is not None:
            self._priming = priming_bytes(priming["id"], priming.get("retry"))
        streams = cast(Any, transport._request_streams)
        streams[self.stream_id] = (_Inbox(self), _Inbox(self))
        ping = asyncio.get_running_loop().call_later(PING_INTERVAL, self._start_pinging)
        try:
            answer = await self._handle(runner, method, params)
            if answer is not None:
                await self._answer(answer)
            elif not self._session_gone:
                await self._unanswered()
        finally:
            ping.cancel()
            if self._pinger is None and self.ended and (self._lock is None or not self._lock.locked()):
                # The stream is written to its end and nothing is writing: nothing below could wait, so there is
                # nothing to shield (most calls; a shielded scope costs more than the rest of the request's end).
                self._unregister()
            else:
                with cancel_scope(shield=True):
                    if self._pinger is not None:
                        self._pinger.cancel()
                        await asyncio.wait((self._pinger,))
                    self._unregister()
                    await self._end()

    def _unregister(self) -> None:
        """Take this call out of the transport's request streams, if it is still there."""
        if self._registered():
            del self.http._request_streams[self.stream_id]

    async def _handle(
        self, runner: ServerRunner[Any], method: str, params: dict[str, Any]
    ) -> dict[str, Any] | ErrorData | None:
        """The dispatcher's `_handle_request`: the result, the error to answer, or None (cancelled: no answer)."""
        if self._session_gone:  # it ended while the priming event was stored
            return None
        scope = self._scope = cancel_scope()
        key = coerce_request_id(self.request_id)
        in_flight = self.dispatcher._in_flight
        in_flight[key] = _InFlight(scope=scope, dctx=cast(Any, self))
        answer: dict[str, Any] | ErrorData | None = None
        try:
            with scope:
                try:
                    result = await runner._on_request(cast(Any, self), method, params)
                finally:
                    self.closed = True
                    entry = in_flight.get(key)
                    if entry is not None and entry.dctx is cast(Any, self):
                        del in_flight[key]
                if not self.cancel_requested_set:
                    answer = result
        except Exception as exc:
            error = handler_exception_to_error_data(exc)
            if error is None:
                logger.exception("handler for %r raised", method)
                error = ErrorData(code=0, message=str(exc))  # the dispatcher's answer, kept
            if not self.cancel_requested_set:
                answer = error
        return answer

    @property
    def cancel_requested_set(self) -> bool:
        return self._cancel_requested is not None and self._cancel_requested.is_set()

    def session_ended(self) -> None:
        """The session is gone: cancel the call (nothing answers it) and end its stream."""
        self._session_gone = True
        if self._scope is not None:
            self._scope.cancel()
        self.ended_soon()

    async def _answer(self, answer: dict[str, Any] | ErrorData) -> None:
        message: JSONRPCResponse | JSONRPCError | None = None
        if isinstance(answer, ErrorData):
            message = JSONRPCError(jsonrpc="2.0", id=self.request_id, error=answer)
        ours = self._registered()
        if ours and not self.streamed and not self.ended:
            # Nothing went before it: number it as the transport's router would, and write it (its JSON made once,
            # for the store and the event both; a result's without its `JSONRPCResponse` unless another kind of
            # store wants the message).
            store = self.http._event_store
            data: str | None = None
            if message is None and (store is None or isinstance(store, EncodedEventStore)):
                data = response_json(self.request_id, cast(dict[str, Any], answer))
            if data is None:
                if message is None:
                    message = JSONRPCResponse(jsonrpc="2.0", id=self.request_id, result=cast(dict[str, Any], answer))
                data = message_json(message)
            event_id: str | None = None
            if isinstance(store, EncodedEventStore):
                event_id = await store.store_encoded(self.stream_id, data, message)
            elif store is not None:
                event_id = await store.store_event(self.stream_id, message)
            await self._write(event_frame(data, event_id), final=True)
            return
        if message is None:
            message = JSONRPCResponse(jsonrpc="2.0", id=self.request_id, result=cast(dict[str, Any], answer))
        # After what went through the dispatcher, or to a stream resumed elsewhere: the same way, in order.
        try:
            await self.dispatcher._write(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("dropped the answer to %r: the session's write stream is closed", self.request_id)
            return
        if ours:
            await self._wait_written()

    async def _unanswered(self) -> None:
        """A cancelled call: the transport answers it `REQUEST_CANCELLED` on its stream (the dispatcher's
        `_settle_unanswered`)."""
        try:
            await self.http._terminate_unanswered_request(self.request_id)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("on_request_unanswered dropped: connection closing")
            return
        if self._registered():
            await self._wait_written()

    def _registered(self) -> bool:
        """Whether the transport's router still sends this request's messages here (not closed, not resumed)."""
        entry = self.http._request_streams.get(self.stream_id)
        return entry is not None and isinstance(entry[0], _Inbox) and entry[0].call is self

    async def _wait_written(self) -> None:
        """Until the router has written the last event of this stream here (or the stream ended otherwise)."""
        if self.ended:
            return
        if self._finished is None:
            self._finished = asyncio.Event()
        await self._finished.wait()

    def _start_pinging(self) -> None:
        self._pinger = asyncio.get_running_loop().create_task(self._ping())

    async def _ping(self) -> None:
        while not self.ended:
            comment = f": ping - {datetime.now(UTC)}{_SEP}{_SEP}".encode()
            await self._write(comment, final=False)
            await asyncio.sleep(PING_INTERVAL)

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _write(self, chunk: bytes, *, final: bool) -> None:
        async with self.lock:
            if self.ended:
                return
            if final:
                self._mark_ended()
            await self.send(
                {"type": "http.response.body", "body": await self._started() + chunk, "more_body": not final}
            )

    async def _end(self) -> None:
        """End the stream without an answer (closed for polling, the session gone): what was due first goes out."""
        async with self.lock:
            if self.ended:
                return
            self._mark_ended()
            await self.send({"type": "http.response.body", "body": await self._started(), "more_body": False})

    async def _started(self) -> bytes:
        """Start the response if it is not yet (the SDK's starts at once): what must open its body, the priming."""
        if self.committed:
            return b""
        self.committed = True
        # Every caller sends its body message next: the head may go out with it (`BODY_FOLLOWS`).
        await self.send(
            {"type": "http.response.start", "status": 200, "headers": sse_headers(self.session_id), BODY_FOLLOWS: True}
        )
        return self._priming

    def _mark_ended(self) -> None:
        self.ended = True
        if self._finished is not None:
            self._finished.set()

    def ended_soon(self) -> None:
        """End the stream from synchronous code (`close_sse_stream`, the session's end); once is enough."""
        if self._ending is None and not self.ended:
            self._ending = asyncio.get_running_loop().create_task(self._end())

    async def _close_stream(self) -> None:
        """The call's `close_sse_stream` (an upstream polling): end this stream; the call runs on."""
        self.http.close_sse_stream(self.stream_id)  # forgets it: what follows is stored for the resumption
        await self._end()

    async def _close_standalone(self) -> None:
        self.http.close_standalone_sse_stream()


class _Inbox:
    """What the transport holds as this call's request stream: its router's `send`, the `close`s of cleanup."""

    __slots__ = ("call",)

    def __init__(self, call: SessionCall) -> None:
        self.call = call

    async def send(self, event: EventMessage) -> None:
        await self.call.send_event(event)

    def close(self) -> None:
        self.call.close()

    async def aclose(self) -> None:
        await self.call.aclose()
