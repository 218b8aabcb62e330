"""The relay's side of one upstream connection: what the hub's client declares, sees and answers.

`Upstream` (upstreams/base.py) uses it at four points: the client's callbacks and options (`client_options`), the
transport (`observe`: its read side watched in receive order, attributing each server-to-client request and log notice
to a call while the transport still knows the sending task's context, and keeping log notices in order; its write
side giving each 2026-07-28 request the capabilities of the client it is made for, `caller_capabilities.py`), the new
connection (`connected`: the upstream's log level, subscriptions to restore), and each call (`call`: registers it
in flight, gives it a deadline that stands still while a person is asked, and writes its relayed notices before its
result goes out).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp import Client
from mcp.client._transport import ReadStream, TransportStreams
from mcp.client.session import ClientRequestContext
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_hub.relay.asks import Ask, Asker
from mcp_hub.relay.caller_capabilities import ForwardingStream
from mcp_hub.relay.calls import DOWNSTREAM, AuditSink, InFlight, UpstreamCall
from mcp_hub.relay.deadlines import Deadline
from mcp_hub.relay.logs import UPSTREAM_LEVEL, LogLevels, log_notice
from mcp_hub.relay.resource_listen import ResourceListener
from mcp_hub.relay.rounds import InputRequired, RoundInput
from mcp_hub.relay.subscriptions import Subscriptions
from mcp_hub.streams import ReadWrapper
from toolpolicy.settings import McpHubSettings, McpServerSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
ASK_METHODS = frozenset({"sampling/createMessage", "elicitation/create", "roots/list"})
MAX_PENDING_ASKS = 1024
"""Attributed requests waiting for the SDK to hand them to a callback; a bound, not an expected number."""


def elicitation_timeout(settings: McpServerSettings, hub: McpHubSettings) -> float:
    """Seconds a client may take to answer one sampling or elicitation request from this server."""
    return settings.elicitation_timeout if settings.elicitation_timeout is not None else hub.elicitation_timeout


@dataclass
class Shared:
    """What every upstream's relay shares: clients' log levels, subscriptions, and the audit."""

    levels: LogLevels = field(default_factory=LogLevels)
    subscriptions: Subscriptions = field(default_factory=Subscriptions)
    audit: AuditSink = field(default_factory=AuditSink)


class ObservedStream(ReadWrapper):
    """A transport's read stream, each item shown to `observe` (with the sender's context) as it is received."""

    def __init__(
        self,
        inner: ReadStream[SessionMessage | Exception],
        observe: Callable[[SessionMessage | Exception, contextvars.Context | None], None],
    ) -> None:
        super().__init__(inner)
        self._observe = observe

    def received(self, item: SessionMessage | Exception) -> SessionMessage | Exception:
        self._observe(item, getattr(self._inner, "last_context", None))
        return item


class UpstreamRelay:
    def __init__(self, server: str, settings: McpServerSettings, hub: McpHubSettings) -> None:
        self.server = server
        self.settings = settings
        self.shared = Shared()
        """Replaced by the hub's own (`Relay.attach`); a standalone upstream relays to no one."""
        self.in_flight = InFlight(server)
        self.asker = Asker(server, human_timeout=elicitation_timeout(settings, hub), machine_timeout=settings.timeout)
        self._asks: dict[types.RequestId, UpstreamCall | None] = {}
        self._client: Client | None = None
        self._tg: TaskGroup | None = None
        self.resources = ResourceListener(server, settings.timeout)
        """A 2026-07-28 upstream's resource subscriptions: one listen stream."""
        self._resources_scope: anyio.CancelScope | None = None

    def client_options(self) -> dict[str, Any]:
        """The hub's client declares every client capability it relays; each request is checked against its own
        client's, and a 2026-07-28 upstream is told that client's (`caller_capabilities.py`)."""
        return {
            "sampling_callback": self._sampling,
            "sampling_capabilities": types.SamplingCapability(tools=types.SamplingToolsCapability()),
            "elicitation_callback": self._elicitation,
            "list_roots_callback": self._roots,
            "log_level": UPSTREAM_LEVEL,
        }

    @asynccontextmanager
    async def observe(
        self, transport: AbstractAsyncContextManager[TransportStreams]
    ) -> AsyncIterator[TransportStreams]:
        async with transport as (read, write), anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield (
                    ObservedStream(read, self._observe),
                    ForwardingStream(write, gateway_samples=self._gateway_samples),
                )
            finally:
                self._tg = None
                self._asks.clear()
                tg.cancel_scope.cancel()

    async def connected(
        self, client: Client, *, refused: Callable[[str, str], None] = lambda method, error: None
    ) -> None:
        """A new connection: ask a 2025-era upstream for every log level, and restore the subscriptions.

        `refused(method, error)` hears of an optional method the upstream turned down (shown in the admin view).
        """
        self._client = client
        legacy = client.protocol_version not in MODERN_PROTOCOL_VERSIONS
        if legacy and client.server_capabilities.logging is not None:
            request = types.SetLevelRequest(params=types.SetLevelRequestParams(level=UPSTREAM_LEVEL))
            try:
                await client.session.send_request(request, types.EmptyResult)
            except MCPError as exc:
                refused("logging/setLevel", f"error {exc.code}: {exc.message}")
        uris = self.shared.subscriptions.uris(self.server)
        if not legacy:
            if not self._follow_resources(client):
                return
            try:  # an empty set too: what was released while the upstream was away is not listened to again
                await self.resources.want(frozenset(uris))
            except MCPError as exc:
                logger.info("MCP server %r: listening again to %s failed: %s", self.server, uris, exc.message)
            return
        for uri in uris:
            try:
                await self.subscription(uri, subscribe=True)
            except MCPError as exc:
                logger.info("MCP server %r: subscribing again to %r failed: %s", self.server, uri, exc.message)

    @property
    def may_ask(self) -> bool:
        """Whether this upstream could send a request mid-call (sampling, elicitation, roots): a 2025-era one has a
        back channel; a 2026-07-28 one has none (its questions are results). Unknown, so yes, while not connected;
        a disabled upstream is never called."""
        client = self._client
        if client is None:
            return self.settings.enabled
        return client.protocol_version not in MODERN_PROTOCOL_VERSIONS

    def disconnected(self) -> None:
        self._client = None
        if self._resources_scope is not None:
            self._resources_scope.cancel()

    def _follow_resources(self, client: Client) -> bool:
        """Keep a 2026-07-28 upstream's listen stream on the URIs the hub's clients want (`resource_listen.py`);
        False when this connection is not observed (nowhere to run it)."""
        if self._resources_scope is not None:
            self._resources_scope.cancel()
        scope = self._resources_scope = anyio.CancelScope()
        updated = partial(self.shared.subscriptions.updated, self.server)

        async def follow() -> None:
            with scope:
                await self.resources.run(client, updated)

        if self._tg is None:
            return False
        self._tg.start_soon(follow)
        return True

    def _gateway_samples(self) -> bool:
        return self.asker.gateway is not None

    # Requests that may be answered with input requests (2026-07-28 clients: `rounds.py`).

    async def call_tool(
        self, client: Client, name: str, arguments: dict[str, Any] | None, progress: ProgressFnT | None
    ) -> types.CallToolResult:
        held = round_input()
        if held is None:
            return await client.call_tool(name, arguments, progress_callback=progress)
        responses, state = held.take()
        result = await client.session.call_tool(
            name,
            arguments,
            progress_callback=progress,
            input_responses=responses,
            request_state=state,
            allow_input_required=True,
        )
        return settled(result)

    async def get_prompt(self, client: Client, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        held = round_input()
        if held is None:
            return await client.get_prompt(name, arguments)
        responses, state = held.take()
        result = await client.session.get_prompt(
            name, arguments, input_responses=responses, request_state=state, allow_input_required=True
        )
        return settled(result)

    async def read_resource(self, client: Client, uri: str) -> types.ReadResourceResult:
        held = round_input()
        if held is None:
            return await client.read_resource(uri)
        responses, state = held.take()
        result = await client.session.read_resource(
            uri, input_responses=responses, request_state=state, allow_input_required=True
        )
        return settled(result)

    def call(self, name: str, timeout: float) -> Calling:
        """One request to this upstream on behalf of the current client request (if any): `async with` it."""
        return Calling(self, UpstreamCall(self.server, name, DOWNSTREAM.get(), Deadline(timeout)))

    def forget_asks(self, call: UpstreamCall) -> None:
        """Drop what `call`'s asks left in the table of questions waiting for an answer."""
        if self._asks:
            for request_id in [key for key, value in self._asks.items() if value is call]:
                del self._asks[request_id]

    async def subscription(self, uri: str, *, subscribe: bool) -> None:
        """(Un)subscribe the hub to `uri` upstream; raises MCPError with what the upstream (or the hub) says."""
        client = self._client
        if client is None:
            raise MCPError(types.INTERNAL_ERROR, f"MCP server {self.server!r} is not connected; try again later")
        resources = client.server_capabilities.resources
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            if resources is None:
                raise MCPError(types.METHOD_NOT_FOUND, f"MCP server {self.server!r} offers no resources")
            await self._listen_subscription(uri, subscribe=subscribe)
            return
        if resources is None or not resources.subscribe:
            raise MCPError(types.METHOD_NOT_FOUND, f"MCP server {self.server!r} does not offer resources/subscribe")
        request: types.SubscribeRequest | types.UnsubscribeRequest
        if subscribe:
            request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
        else:
            request = types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri))
        await client.session.send_request(
            request, types.EmptyResult, request_read_timeout_seconds=self.settings.timeout
        )

    async def _listen_subscription(self, uri: str, *, subscribe: bool) -> None:
        # From what the hub's clients hold (not yet counting `uri` when subscribing, no longer when unsubscribing), so
        # a refused or abandoned change leaves nothing behind.
        held = frozenset(self.shared.subscriptions.uris(self.server))
        honored = await self.resources.want(held | {uri} if subscribe else held - {uri})
        if subscribe and uri not in honored:
            raise MCPError(types.INVALID_PARAMS, f"MCP server {self.server!r} did not accept a subscription to {uri!r}")

    # What the upstream sends.

    def seen(self, item: SessionMessage, context: contextvars.Context | None) -> None:
        """A message an upstream sent during a call the hub made without the SDK's client (`fast_call.py`)."""
        self._observe(item, context)

    def _observe(self, item: SessionMessage | Exception, context: contextvars.Context | None) -> None:
        if not isinstance(item, SessionMessage):
            return
        message = item.message
        if isinstance(message, types.JSONRPCRequest) and message.method in ASK_METHODS:
            if len(self._asks) >= MAX_PENDING_ASKS:
                del self._asks[next(iter(self._asks))]
            self._asks[message.id] = self.in_flight.attribute(context)
        elif isinstance(message, types.JSONRPCNotification):
            if message.method == "notifications/message":
                self._log(message.params, context)
            elif message.method == "notifications/resources/updated":
                params = message.params or {}
                if SUBSCRIPTION_ID_META_KEY in (params.get("_meta") or {}):
                    return  # a listen stream's: `resources` delivers it
                uri = params.get("uri")
                if isinstance(uri, str):
                    self.shared.subscriptions.updated(self.server, uri)

    def _log(self, params: dict[str, Any] | None, context: contextvars.Context | None) -> None:
        notice = log_notice(params)
        call = self.in_flight.attribute(context)
        downstream = call.downstream if call is not None else None
        if notice is None or call is None or downstream is None or self._tg is None:
            return  # the upstream's own message handler logs it; no client hears it
        if self.shared.levels.allows(downstream, notice.params.level):
            send = partial(downstream.session.send_notification, notice, downstream.request_id)
            call.outbox.put(send, self._tg)

    def _call_for(self, ctx: ClientRequestContext) -> UpstreamCall | None:
        if ctx.request_id in self._asks:
            return self._asks.pop(ctx.request_id)
        # 2026-07-28 input requests come inside a result, and the SDK answers them in the calling task.
        return self.in_flight.current()

    async def _ask(self, ctx: ClientRequestContext, request: Ask) -> Any:
        return await self.asker.ask(self._call_for(ctx), request, self.shared.audit)

    async def _sampling(
        self, ctx: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        answer = await self._ask(ctx, types.CreateMessageRequest(params=params))
        return cast(types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData, answer)

    async def _elicitation(
        self, ctx: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        answer = await self._ask(ctx, types.ElicitRequest(params=params))
        return cast(types.ElicitResult | types.ErrorData, answer)

    async def _roots(self, ctx: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        return cast(types.ListRootsResult | types.ErrorData, await self._ask(ctx, types.ListRootsRequest()))


def round_input() -> RoundInput | None:
    """What the current 2026-07-28 client request brings for the upstream, or None (any other request)."""
    downstream = DOWNSTREAM.get()
    return downstream.held.round_input if downstream is not None and downstream.held is not None else None


def settled(result: T | types.InputRequiredResult) -> T:
    if isinstance(result, types.InputRequiredResult):
        raise InputRequired(result)
    return result


class Calling:
    """`UpstreamRelay.call`: the call is in flight (and the task's) inside; a call that ends well waits for its
    relayed notices to be written. A class, not an `asynccontextmanager`: this wraps every upstream request, and a
    generator-based manager costs a generator, its frame and a helper object more per request."""

    __slots__ = ("_relay", "_call", "_token")

    def __init__(self, relay: UpstreamRelay, call: UpstreamCall) -> None:
        self._relay = relay
        self._call = call
        self._token: contextvars.Token[UpstreamCall | None] | None = None

    async def __aenter__(self) -> Deadline:
        self._token = self._relay.in_flight.enter(self._call)
        return self._call.deadline

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        call = self._call
        try:
            if kind is None and call.outbox.writing:  # (most calls relay no notices: no coroutine to wait on)
                await call.outbox.flushed()
        finally:
            assert self._token is not None
            self._relay.in_flight.leave(call, self._token)
            self._relay.forget_asks(call)
