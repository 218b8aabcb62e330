"""`tools/call` to a Streamable HTTP or stdio upstream without the MCP SDK's client machinery: the hub's hot path.

Over stdio (`fast_stdio.py`) the body below is written to the process's stdin and its response taken off stdout by
id; there are no headers, and a call whose caller follows progress goes through the SDK's client. The rest of this
doc describes the HTTP wire.

The SDK's client sends a request through its session (pydantic models), a dispatcher task, anyio memory streams and
an httpx2 transport task. `FastCalls` does what they do for one `tools/call`, in the calling task, over the
upstream's pooled HTTP client (`fast_http.py`), and leaves to the SDK's session what it keeps per connection
(the negotiated version, its request ids, tool output schemas, `Mcp-Param-*` header maps, its callbacks):

- the request: the SDK's body and headers for the negotiated era (2026-07-28: `_meta` with protocol version,
  client info, the calling client's capabilities as `caller_capabilities.py` forwards them, the log level;
  `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`; 2025: the session's `Mcp-Session-Id` and
  version), a progress token when the caller follows progress, and the trace context of the SDK's client span;
- the answer: `application/json`, or an event stream whose notices (progress, logging, list changes) and requests
  (sampling, elicitation, roots) go to the same relay hooks and session callbacks the SDK's client would use, the
  replies POSTed back; a stream that ends early is resumed with `Last-Event-ID` as the SDK does (`polling.py`);
- failures: the SDK's `MCPError`s (HTTP statuses, 202, parse errors, a lost connection as `CONNECTION_CLOSED`), so
  `Upstream._request` maps them as before; a caller that goes away aborts the POST (2026-07-28) or sends
  `notifications/cancelled` (2025);
- the result: validated as the SDK's session validates it (protocol tables, output schema), 2026-07-28 input
  rounds run by the SDK's driver (or passed through to a 2026-07-28 client, `rounds.py`).

A redirect (which the SDK would follow within the origin) makes the connection use the SDK's client from then on.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import anyio
import mcp_types as types
import pydantic_core
from anyio.abc import TaskGroup
from mcp import Client
from mcp.client.session import ClientSession, _clamp_inbound_ttl, _later_revision_fields
from mcp.shared import _otel as sdk_otel
from mcp.shared.dispatcher import ProgressFnT, coerce_request_id
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, encode_header_value
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher, handler_exception_to_error_data
from mcp.shared.message import SessionMessage
from mcp_types import methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from mcp_hub import polling
from mcp_hub.relay.caller_capabilities import CAPABILITIES_KEY, forwarded
from mcp_hub.relay.calls import DOWNSTREAM
from mcp_hub.relay.upstream import UpstreamRelay, round_input, settled
from mcp_hub.upstreams.fast_http import LAST_EVENT_ID, FastHttp, SseError, sse_events
from mcp_hub.upstreams.fast_stdio import StdioLink
from mcp_hub.upstreams.lean_http import Answer
from mcp_hub.upstreams.output_check import compiled
from mcp_hub.upstreams.result_model import call_result
from mcp_hub.upstreams.result_shapes import SurfaceCheck
from toolpolicy.telemetry.current_span import CurrentSpan
from toolpolicy.telemetry.tracing import inject, nothing_to_trace

logger = logging.getLogger(__name__)

METHOD = "tools/call"
MAX_RECONNECTIONS = 2
"""Attempts to resume an event stream that ended before the response (the SDK's `MAX_RECONNECTION_ATTEMPTS`)."""
RECONNECT_DELAY_MS = 1000
"""Wait before resuming when the upstream gave no `retry` (the SDK's `DEFAULT_RECONNECTION_DELAY_MS`)."""
_encode = json.JSONEncoder(separators=(",", ":")).encode
"""`json.dumps(..., separators=(",", ":"))` without building an encoder per call."""
NAME_HEADERS_KEPT = 1024
"""Tool names whose `Mcp-Name` header value is remembered (the least recently used go first)."""
name_header = functools.lru_cache(maxsize=NAME_HEADERS_KEPT)(encode_header_value)
"""`encode_header_value(name)`, the `Mcp-Name` of a call, remembered per tool name (its two regular expressions
ran on every call)."""
ABANDON_WRITE_TIMEOUT = 5.0
"""Seconds a courtesy `notifications/cancelled` may take (the SDK dispatcher's `_ABANDON_WRITE_TIMEOUT`)."""

CallOutcome = types.CallToolResult | types.InputRequiredResult


class Redirected(Exception):
    """The upstream answered the POST with a redirect: nothing was done, the SDK's client may send it instead."""


@dataclass(slots=True)
class _RequestContext:
    """What the SDK session's `_on_request` reads of its dispatch context."""

    request_id: types.RequestId


class FastCalls:
    """The fast `tools/call` of one upstream connection (`client`, negotiated), over `http`."""

    def __init__(self, http: FastHttp | StdioLink, client: Client, relay: UpstreamRelay) -> None:
        self.http = http
        """The wire: the upstream's pooled HTTP client, or its stdio process's link (`fast_stdio.py`)."""
        self.client = client
        self.relay = relay
        self.enabled = True
        """False once the upstream redirected a call: the SDK's client, which follows redirects, takes over."""
        version = client.protocol_version
        assert version is not None
        self.version = version
        self.modern = version in MODERN_PROTOCOL_VERSIONS
        if isinstance(http, FastHttp):
            http.protocol_version = version
        session = client.session
        self._client_info = session._client_info.model_dump(by_alias=True, mode="json", exclude_none=True)
        self._capabilities = session._build_capabilities(version).model_dump(
            by_alias=True, mode="json", exclude_none=True
        )
        self._log_level = session._log_level
        self._forwarded: tuple[types.ClientCapabilities | None, bool, dict[str, Any]] | None = None
        """The last `_caller_capabilities` answer: (the client's capabilities, gateway samples, what is sent)."""
        self._next_id = 0
        surface = methods.SERVER_RESULTS.get((METHOD, version))
        self._surface = SurfaceCheck(methods._adapter(surface)) if surface is not None else None
        """The protocol table's result type for this version (None: not in the tables, nothing to check)."""

    # The call, as `UpstreamRelay.call_tool` makes it through the SDK's `Client`.

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None, progress: ProgressFnT | None, *, quiet: bool = False
    ) -> types.CallToolResult:
        """`quiet`: nothing to trace, as the caller found just now (`Upstream.call_tool`); the first request only."""
        held = round_input()
        if held is None:
            try:  # `_send_relisting`, in this frame rather than one of its own (every call's first request)
                first = await self.send(name, arguments, progress, None, None, quiet=quiet)
            except MCPError as mismatch:
                first = await self._relisted(mismatch, name, arguments, progress, None, None)
            if not isinstance(first, types.InputRequiredResult):
                return first  # what `_drive_input_required` returns of a terminal result, without its closure and frame

            async def retry(responses: types.InputResponses | None, state: str | None) -> CallOutcome:
                return await self._send_relisting(name, arguments, progress, responses, state)

            return cast(types.CallToolResult, await self.client._drive_input_required(first, retry))
        responses, state = held.take()
        return settled(await self.send(name, arguments, progress, responses, state, quiet=quiet))

    async def _send_relisting(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None,
        responses: types.InputResponses | None,
        state: str | None,
        *,
        quiet: bool = False,
    ) -> CallOutcome:
        """`Client.call_tool`'s recovery: a 2026-07-28 HEADER_MISMATCH re-lists the tool and sends once more."""
        try:
            return await self.send(name, arguments, progress, responses, state, quiet=quiet)
        except MCPError as mismatch:
            return await self._relisted(mismatch, name, arguments, progress, responses, state)

    async def _relisted(
        self,
        mismatch: MCPError,
        name: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None,
        responses: types.InputResponses | None,
        state: str | None,
    ) -> CallOutcome:
        """The request sent once more after `mismatch`, if a HEADER_MISMATCH of 2026-07-28, else `mismatch` raised."""
        if mismatch.code != types.HEADER_MISMATCH or not self.modern:
            raise mismatch
        try:
            with anyio.fail_after(self.client.read_timeout_seconds):
                await self.client._relist_tool(name)
        except (MCPError, TimeoutError, ValidationError) as relist_error:
            raise mismatch from relist_error
        return await self.send(name, arguments, progress, responses, state)

    async def send(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None,
        responses: types.InputResponses | None,
        state: str | None,
        *,
        quiet: bool = False,
    ) -> CallOutcome:
        """One `tools/call` request: what `ClientSession.call_tool(..., allow_input_required=True)` returns.

        `quiet`: the caller found `nothing_to_trace()` in this task and started no span since (else it is asked)."""
        if self.enabled and (progress is None or not isinstance(self.http, StdioLink)):
            # Over stdio, a call whose caller follows progress stays with the SDK, whose dispatcher routes the notices.
            try:
                raw = await self._request(name, arguments, progress, responses, state, quiet)
            except Redirected:
                logger.info("MCP server %r redirected a tool call; using the MCP SDK's client", self.relay.server)
                self.enabled = False
            else:
                result = self._result(name, raw)
                if isinstance(result, types.CallToolResult) and not result.is_error:
                    session = self.client.session
                    if not _surely_valid(session, name, result):
                        await session.validate_tool_result(name, result)
                return result
        return await self.client.session.call_tool(
            name,
            arguments,
            progress_callback=progress,
            input_responses=responses,
            request_state=state,
            allow_input_required=True,
        )

    def _result(self, name: str, raw: dict[str, Any]) -> CallOutcome:
        """The SDK session's `send_request` and `call_tool` checks of a result, less the output schema's (which
        `send` makes of a tool result, the one check that may await: the SDK may re-list the tools first)."""
        session = self.client.session
        _clamp_inbound_ttl(raw)
        if self._surface is not None:
            # `methods.validate_server_result` less the dump of the validated result it throws away.
            self._surface.check(raw)
        if not (foreign := _later_revision_fields(METHOD, self.version)).isdisjoint(raw):
            raw = {key: value for key, value in raw.items() if key not in foreign}
        result = call_result(session._call_tool_adapter, raw)
        if not isinstance(result, types.CallToolResult | types.InputRequiredResult):
            raise RuntimeError(f"MCP server answered {METHOD} with a result the hub does not know")
        return result

    # The wire.

    def _request_id(self) -> int:
        dispatcher = self.client.session._dispatcher
        if isinstance(dispatcher, JSONRPCDispatcher):
            return dispatcher._allocate_id()  # the SDK's own sequence: ids stay unique on the session
        self._next_id += 1
        return self._next_id

    async def _request(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None,
        responses: types.InputResponses | None,
        state: str | None,
        quiet: bool,
    ) -> dict[str, Any]:
        request_id = self._request_id()
        params: dict[str, Any]
        if responses is None and state is None:
            params = {"name": name} if arguments is None else {"name": name, "arguments": arguments}
        else:
            model = types.CallToolRequestParams(
                name=name, arguments=arguments, input_responses=responses, request_state=state
            )
            params = model.model_dump(by_alias=True, mode="json", exclude_none=True)
        wire = self.http
        over_http = isinstance(wire, FastHttp)
        headers = wire.headers() if isinstance(wire, FastHttp) else {}  # (mypy narrows only on the isinstance)
        meta: dict[str, Any] = {}
        if self.modern:
            meta[types.PROTOCOL_VERSION_META_KEY] = self.version
            meta[types.CLIENT_INFO_META_KEY] = self._client_info
            meta[CAPABILITIES_KEY] = self._caller_capabilities()
            if self._log_level is not None:
                meta[types.LOG_LEVEL_META_KEY] = self._log_level
            if over_http:  # stdio has no headers: the SDK's stdio transport sends the body alone
                headers[MCP_METHOD_HEADER] = METHOD
                headers[MCP_NAME_HEADER] = name_header(name)
                headers.update(self.client.session._resolve_param_headers(name, arguments or {}))
        if progress is not None:
            meta["progressToken"] = request_id
        if quiet or nothing_to_trace():
            # The SDK client's span would be the invalid one, current in a context it leaves as it was: skipped.
            # What the propagators write is written all the same (baggage, say; no `traceparent` without a trace).
            inject(meta)
            return await self._exchange(request_id, progress, _body(request_id, params, meta), headers)
        attributes = {"mcp.method.name": METHOD, "jsonrpc.request.id": str(request_id)}
        # The SDK's span (`otel_span` on its tracer), entered as one object rather than two generator layers.
        span_arguments = (f"MCP send {METHOD} {name}", None, SpanKind.CLIENT, attributes, (), None, True, True)
        with CurrentSpan(sdk_otel._tracer, span_arguments):
            inject(meta)
            return await self._exchange(request_id, progress, _body(request_id, params, meta), headers)

    def _exchange(
        self, request_id: int, progress: ProgressFnT | None, body: bytes, headers: Mapping[str, str]
    ) -> Awaitable[dict[str, Any]]:
        """The request's exchange with the upstream, to await (the HTTP one without a coroutine layer of this)."""
        wire = self.http
        if isinstance(wire, FastHttp):
            return _Exchange(self, wire, request_id, progress).run(body, headers)
        return self._stdio_exchange(wire, request_id, body)

    async def _stdio_exchange(self, wire: StdioLink, request_id: int, body: bytes) -> dict[str, Any]:
        try:
            return _response_outcome(await wire.call(request_id, body), request_id)
        except ValueError as exc:
            raise MCPError(types.PARSE_ERROR, f"Failed to parse JSON response: {exc}") from None

    def _caller_capabilities(self) -> dict[str, Any]:
        downstream = DOWNSTREAM.get()
        if downstream is None:
            return self._capabilities
        gateway_samples = self.relay.asker.gateway is not None
        client = downstream.capabilities
        last = self._forwarded
        # A client sends the same capabilities on every request (one model per distinct envelope or session): the
        # last answer is kept with the model it was made for (held, so its identity stays its own).
        if last is not None and last[0] is client and last[1] == gateway_samples:
            return last[2]
        shared = forwarded(client, self._capabilities, gateway_samples=gateway_samples)
        self._forwarded = (client, gateway_samples, shared)
        return shared


class _Exchange:
    """One request's POST, its answer, and what the upstream sends meanwhile."""

    def __init__(self, calls: FastCalls, http: FastHttp, request_id: int, progress: ProgressFnT | None) -> None:
        self.calls = calls
        self.http = http
        self.request_id = request_id
        self.progress = progress
        self._answering: dict[types.RequestId, anyio.CancelScope] = {}

    async def run(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        sent = False
        try:
            try:
                response = await self.http.post(body, headers)
            except aiohttp.ClientError as exc:
                # The SDK's transport dies on a failed POST and takes the connection with it.
                logger.info("MCP server %r: HTTP request failed: %s", self.calls.relay.server, exc)
                raise MCPError(types.CONNECTION_CLOSED, "Connection closed") from None
            sent = True
            try:
                return await self._answer(response)
            finally:
                response.close()  # an answer not read to its end (a caller gone, a timeout) aborts the stream
        except anyio.get_cancelled_exc_class():
            if sent and not self.calls.modern:
                with anyio.move_on_after(ABANDON_WRITE_TIMEOUT, shield=True):
                    await self._notify_cancelled()
            raise

    async def _notify_cancelled(self) -> None:
        # 2026-07-28 has no client notifications over HTTP: the aborted POST is the signal.
        params = {"requestId": self.request_id, "reason": "caller cancelled"}
        await self._post_message({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params})

    async def _post_message(self, message: dict[str, Any]) -> None:
        try:
            response = await self.http.post(encode_message(message), self.http.headers())
            response.close()
        except aiohttp.ClientError as exc:
            logger.info("MCP server %r: could not send %s: %s", self.calls.relay.server, message.get("method"), exc)

    async def _answer(self, response: Answer) -> dict[str, Any]:
        status = response.status
        if status == 202:
            raise MCPError(types.INVALID_REQUEST, "server answered a request with 202 Accepted")
        if 300 <= status < 400 and "location" in response.headers:
            raise Redirected
        content_type = response.headers.get("content-type", "").lower()
        if status >= 400:
            raise await self._http_error(response, content_type)
        if content_type.startswith("application/json"):
            body = await response.read()
            try:
                message = _decode(body)
                return _response_outcome(message, self.request_id)
            except ValueError as exc:
                raise MCPError(types.PARSE_ERROR, f"Failed to parse JSON response: {exc}") from None
        if content_type.startswith("text/event-stream"):
            return await self._stream(response)
        raise MCPError(types.INVALID_REQUEST, f"Unexpected content type: {content_type}")

    async def _http_error(self, response: Answer, content_type: str) -> MCPError:
        if content_type.startswith("application/json"):
            try:
                message = json.loads(await response.read())
                if isinstance(message, dict) and isinstance(message.get("error"), dict):
                    error = types.ErrorData.model_validate(message["error"])
                    return MCPError(error.code, error.message, error.data)
            except (ValueError, aiohttp.ClientError):
                pass
        if response.status == 404:
            if self.http.session_id is None:
                return MCPError(types.METHOD_NOT_FOUND, "Not Found")
            return MCPError(types.INVALID_REQUEST, "Session terminated")
        return MCPError(types.INTERNAL_ERROR, "Server returned an error response")

    async def _stream(self, response: Answer) -> dict[str, Any]:
        """Read the call's event stream to its response, resuming it (`Last-Event-ID`) if it ends before."""
        async with anyio.create_task_group() as tg:
            try:
                outcome, last_id, retry = await self._read(response, tg, None, None)
                attempt = 0
                while outcome is None:
                    if last_id is None:
                        raise MCPError(types.CONNECTION_CLOSED, "SSE stream ended without a response")
                    if attempt >= MAX_RECONNECTIONS:
                        raise MCPError(
                            types.CONNECTION_CLOSED, "SSE stream ended and reconnection attempts were exhausted"
                        )
                    await anyio.sleep((retry if retry is not None else RECONNECT_DELAY_MS) / 1000)
                    await polling.upstream_stream_closed()
                    try:
                        resumed = await self.http.get({**self.http.headers(), LAST_EVENT_ID: last_id})
                    except aiohttp.ClientError:
                        attempt += 1
                        continue
                    try:
                        if resumed.status >= 400:
                            attempt += 1
                            continue
                        outcome, last_id, retry = await self._read(resumed, tg, last_id, retry)
                        attempt = 0
                    finally:
                        resumed.close()
            finally:
                tg.cancel_scope.cancel()  # questions still being answered: the upstream no longer waits
        assert outcome is not None
        return outcome

    async def _read(
        self, response: Answer, tg: TaskGroup, last_id: str | None, retry: int | None
    ) -> tuple[dict[str, Any] | None, str | None, int | None]:
        """Events until the response (returned), or the end of the stream (None), with the last id and retry."""
        try:
            async for event in sse_events(response):
                if event.id:
                    last_id = event.id
                if event.retry is not None:
                    retry = event.retry
                if event.event != "message" or not event.data:
                    continue
                try:
                    message = json.loads(event.data)
                    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
                        raise ValueError("not a JSON-RPC 2.0 message")
                    if "method" not in message:
                        return _response_outcome(message, None), last_id, retry
                except ValueError as exc:
                    raise MCPError(types.PARSE_ERROR, f"Failed to parse SSE message: {exc}") from None
                await self._incoming(message, tg)
        except SseError as exc:
            raise MCPError(types.CONNECTION_CLOSED, f"SSE stream failed: {exc}") from None
        except aiohttp.ClientError:
            logger.debug("SSE stream ended", exc_info=True)
        return None, last_id, retry

    # What the upstream sends during the call.

    async def _incoming(self, message: dict[str, Any], tg: TaskGroup) -> None:
        method = message["method"]
        params = message.get("params")
        if "id" in message:
            parsed = types.JSONRPCRequest.model_validate(message, by_name=False)
            self.calls.relay.seen(SessionMessage(parsed), contextvars.copy_context())
            scope = anyio.CancelScope()
            self._answering[coerce_request_id(parsed.id)] = scope
            tg.start_soon(self._reply, parsed.id, method, params, scope)
            return
        if method == "notifications/progress":
            await self._progress(params)
        elif method == "notifications/cancelled":
            request_id = (params or {}).get("requestId")
            answering = (
                self._answering.get(coerce_request_id(request_id)) if isinstance(request_id, str | int) else None
            )
            if answering is not None:
                answering.cancel()
        notice = types.JSONRPCNotification.model_validate(message, by_name=False)
        self.calls.relay.seen(SessionMessage(notice), contextvars.copy_context())
        try:
            # The SDK session's routing: typed callbacks, then the connection's message handler.
            await self.calls.client.session._on_notify(cast(Any, None), method, params)
        except Exception:
            logger.exception("notification handler for %r raised", method)

    async def _progress(self, params: Any) -> None:
        """The dispatcher's routing of a progress notice to the call's `progress` callback (errors logged)."""
        match params:
            case {"progressToken": str() | int() as token, "progress": int() | float() as progress} if (
                not isinstance(token, bool)
                and not isinstance(progress, bool)
                and self.progress is not None
                and coerce_request_id(token) == self.request_id
            ):
                total = params.get("total")
                message = params.get("message")
                try:
                    await self.progress(
                        float(progress),
                        float(total) if isinstance(total, int | float) else None,
                        message if isinstance(message, str) else None,
                    )
                except Exception:
                    logger.exception("progress callback raised")
            case _:
                pass

    async def _reply(self, request_id: types.RequestId, method: str, params: Any, scope: anyio.CancelScope) -> None:
        """Answer a server-to-client request as the SDK's session does, and POST the answer back."""
        answer: dict[str, Any]
        with scope:
            try:
                result = await self.calls.client.session._on_request(
                    cast(Any, _RequestContext(request_id)), method, params
                )
                answer = {"jsonrpc": "2.0", "id": request_id, "result": result}
            except Exception as exc:
                error = handler_exception_to_error_data(exc)
                if error is None:
                    logger.exception("handler for %r raised", method)
                    error = types.ErrorData(code=0, message=str(exc))
                answer = {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": error.model_dump(by_alias=True, mode="json", exclude_none=True),
                }
            await self._post_message(answer)
        self._answering.pop(coerce_request_id(request_id), None)


def _surely_valid(session: ClientSession, name: str, result: types.CallToolResult) -> bool:
    """Whether `session.validate_tool_result` would pass `result` without a word (`output_check.py`); False: ask it."""
    schemas = session._tool_output_schemas
    if name not in schemas:
        return False  # the SDK re-lists the tools first
    schema = schemas[name]
    if schema is None:
        return True  # no output schema: the SDK checks nothing
    if result.structured_content is None:
        return False
    check = compiled(schema)
    return check is not None and check(result.structured_content)


def _body(request_id: int, params: dict[str, Any], meta: dict[str, Any]) -> bytes:
    if meta:
        params["_meta"] = meta
    body = {"jsonrpc": "2.0", "id": request_id, "method": METHOD, "params": params}
    return encode_message(body)


def encode_message(message: dict[str, Any]) -> bytes:
    """Compact JSON of a message to an upstream, in UTF-8 as the SDK's client sends it, by pydantic-core's encoder
    (a fraction of `json`'s cost); what UTF-8 cannot hold (a lone surrogate from Code Mode, say) is escaped by json.
    Non-finite numbers are written as `json` writes them (`NaN`, `Infinity`), as before."""
    try:
        return pydantic_core.to_json(message, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:
        return _encode(message).encode()


def _decode(body: bytes) -> Any:
    """`json.loads(body)`, by pydantic-core's parser where it agrees (it refuses lone surrogates, say: json decides)."""
    try:
        return pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError:
        return json.loads(body)


def _response_outcome(message: Any, request_id: int | None) -> dict[str, Any]:
    """The result of a JSON-RPC response (`request_id`: the id it must carry, or None: any), or its error raised."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise ValueError("not a JSON-RPC 2.0 message")
    if request_id is not None and message.get("id") != request_id:
        raise ValueError(f"a response to request {message.get('id')!r}, not {request_id!r}")
    if "error" in message:
        try:
            error = types.ErrorData.model_validate(message["error"], by_name=False)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        raise MCPError(error.code, error.message, error.data)
    result = message.get("result")
    if not isinstance(result, dict):
        raise ValueError("a response without a result object")
    return result
