"""One upstream MCP server: a long-lived session shared by every caller, its health, and its cached listings.

The transports differ only in how bytes flow (`stdio`, `http`, `sse` subclass `Upstream.transport`); everything
above that is here. `serve_connection` is one connection's whole life; the supervisor calls it again, with backoff,
whenever it ends. Foreign exceptions (the SDK's `MCPError`, pydantic's `ValidationError`, transport errors) are
translated here into the hub's `UpstreamError` family, so nothing above this module sees them.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio
import mcp_types as types
from mcp import Client
from mcp.client._transport import TransportStreams
from mcp.client.session import IncomingMessage
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ServerEvent, ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from mcp_hub.catalog import Kind, Snapshot
from mcp_hub.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from mcp_hub.relay.deadlines import Deadline
from mcp_hub.relay.upstream import UpstreamRelay
from mcp_hub.upstreams.health import Health
from mcp_hub.upstreams.key_sessions import KeySessions
from mcp_hub.upstreams.oauth.credentials import ACTING
from mcp_hub.upstreams.optional import UnsupportedMethods, answered_or_none
from mcp_hub.upstreams.screen import ToolScreen, screened
from mcp_hub.upstreams.session import list_everything, watched
from toolpolicy.globs import GlobSet
from toolpolicy.settings import McpHubSettings, McpServerSettings

if TYPE_CHECKING:
    import httpx2

    from mcp_hub.upstreams.fast_call import FastCalls
    from mcp_hub.upstreams.oauth.credentials import Credentials

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=types.Result)
CLIENT_INFO = types.Implementation(name="isthmus-mcp-hub", version="0.1.0")
_BACKSTOP = 5.0
"""Seconds past a call's timeout before the hub stops waiting on its own (e.g. a write to a stuck stdio pipe)."""


class ConnectionLost(Exception):
    """The connection ended after it was established (the process exited, the stream closed)."""


class Upstream(ABC):
    """An upstream server; subclasses provide `transport()` (and may describe their failures better)."""

    kind: ClassVar[str]

    def __init__(self, name: str, settings: McpServerSettings, hub: McpHubSettings) -> None:
        self.name = name
        self.settings = settings
        self.hub = hub
        self.health = Health(name, state="connecting" if settings.enabled else "disabled")
        self.snapshot: Snapshot | None = None
        self.on_snapshot: Callable[[str, Snapshot | None], None] = lambda name, snapshot: None
        """Called whenever the listings change or the server goes down (None)."""
        self.on_announced: Callable[[str, frozenset[Kind]], None] = lambda name, kinds: None
        """Called when the server announced a change of these lists but the re-listing shows none (a change undone
        at once, or one the listing does not show): the server's clients are told all the same."""
        self.on_connected: Callable[[], None] = lambda: None
        self.relay = UpstreamRelay(name, settings, hub)
        """The server-to-client half: its requests and notices during calls, relayed to the calls' clients."""
        self._expose = GlobSet.of(settings.tools)
        self.unsupported = UnsupportedMethods(name)
        """Optional methods this server lacks or fails, served as empty."""
        self.screen = ToolScreen(name)
        """Drops the tools whose definitions are invalid from its listings (`screen.rejected` says which)."""
        self.credentials: Credentials | None = None
        """OAuth credentials (`auth: {type: oauth}`, set by `UpstreamOAuth.attach`): a bearer on every request."""
        self.http_auth: httpx2.Auth | None = None
        """The same, as the httpx2 client's auth."""
        self.connect_wanted = anyio.Event()
        """Set to end the supervisor's wait before the next connection attempt (a key just authorized)."""
        self._per_key: KeySessions | None = None
        """One session per key (`key_sessions.py`), when per-key OAuth tokens meet a 2025-era server."""
        self._client: Client | None = None
        self._fast: FastCalls | None = None
        """This connection's `tools/call` fast path (`fast_call.py`), or None: the SDK's client."""
        self._lost: anyio.Event | None = None
        self._refresh_wanted: anyio.Event | None = None
        self._announced: set[Kind] = set()

    @abstractmethod
    def transport(self) -> AbstractAsyncContextManager[TransportStreams]:
        """Open the byte-level connection to the server."""

    @abstractmethod
    def describe(self) -> str:
        """Where the server is, for logs and the admin API (never a secret)."""

    def fast_calls(self, client: Client) -> FastCalls | None:
        """The fast path for `tools/call` on this new connection, if the transport has one (and it is on)."""
        return None

    def lost_reason(self) -> str:
        """Why an established connection ended, as well as the transport can tell."""
        return "connection closed"

    def key_sessions(self) -> KeySessions | None:
        """Per-key sessions for this connection, if the transport can open them (Streamable HTTP)."""
        return None

    def connect_soon(self) -> None:
        """Try to connect now rather than after the backoff (when down)."""
        self.connect_wanted.set()

    async def serve_connection(self) -> None:
        """Connect, list, and serve callers until the connection is lost; always ends by raising why."""
        if self.credentials is not None:
            await self.credentials.ready_for_connection()  # an OAuth failure says why, naming the server
        lost = anyio.Event()
        timed_out = False
        async with anyio.create_task_group() as tg:
            connected = anyio.Event()

            async def watchdog() -> None:
                # A fail_after around the connect would close before the session's own task groups do.
                nonlocal timed_out
                with anyio.move_on_after(self.hub.connect_timeout):
                    await connected.wait()
                    return
                timed_out = True
                tg.cancel_scope.cancel()

            tg.start_soon(watchdog)
            client = Client(
                watched(self.relay.observe(screened(self.transport(), self.screen)), lost, self.name),
                mode=self.settings.protocol,
                cache=None,
                client_info=CLIENT_INFO,
                message_handler=self._on_message,
                **self.relay.client_options(),
            )
            async with client:
                snapshot = await list_everything(client, self._expose, self.unsupported)
                await self.relay.connected(client, refused=self.unsupported.note)
                connected.set()
                self._connected_with(client, snapshot, lost)
                try:
                    async with anyio.create_task_group() as serving:
                        credentials = self.credentials
                        if credentials is not None and credentials.per_key and not self._modern(client):
                            self._per_key = self.key_sessions()
                            if self._per_key is not None:
                                await serving.start(self._per_key.run)
                        serving.start_soon(self._refresh_loop, client, lost)
                        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                            serving.start_soon(self._listen, client)
                        await lost.wait()
                        serving.cancel_scope.cancel()
                finally:
                    self._client = self._fast = self._per_key = None
                    self.relay.disconnected()
        if timed_out:
            raise TimeoutError(f"no answer within {self.hub.connect_timeout:g}s of connecting")
        raise ConnectionLost(self.lost_reason())

    def went_down(self, error: str) -> None:
        """Called by the supervisor when a connection attempt failed or a connection ended."""
        self._client = self._fast = None
        self.health.failures += 1
        self.health.enter("down", error)
        if self.snapshot is not None:
            self.snapshot = None
            self.on_snapshot(self.name, None)

    def paused(self) -> None:
        """Called by the supervisor when the server is disabled at run time: its lists go, its state says so."""
        self._client = self._fast = None
        self.health.enter("disabled")
        if self.snapshot is not None:
            self.snapshot = None
            self.on_snapshot(self.name, None)

    def refresh_soon(self) -> None:
        if self._refresh_wanted is not None:
            self._refresh_wanted.set()

    # Calls: one shared session, concurrent requests multiplexed on it.

    async def call_tool(
        self,
        tool: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None = None,
        *,
        quiet: bool = False,
    ) -> types.CallToolResult:
        """Call `tool`; `quiet`: the caller found `nothing_to_trace()` in this task and has started no span since
        (the pipeline, which checks it for its own spans): the request's client span is skipped without asking again.
        """
        client = await self._session_for_call()
        # No SDK read timeout: the deadline is the call's timeout, and stands still while a person is asked.
        fast = self._fast
        async with self.relay.call(tool, self.settings.timeout) as deadline:
            if fast is not None and fast.client is client:
                return await self._request(fast.call_tool(tool, arguments, progress, quiet=quiet), deadline)
            return await self._request(self.relay.call_tool(client, tool, arguments, progress), deadline)

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        client = await self._session_for_call()
        async with self.relay.call(uri, self.settings.timeout) as deadline:
            return await self._request(self.relay.read_resource(client, uri), deadline)

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        client = await self._session_for_call()
        async with self.relay.call(name, self.settings.timeout) as deadline:
            return await self._request(self.relay.get_prompt(client, name, arguments), deadline)

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
    ) -> types.CompleteResult:
        client = self._session()
        nothing = types.CompleteResult(completion=types.Completion(values=[]))
        if client.server_capabilities.completions is None:
            return nothing  # the server offers no completions: that is an empty answer, not an error
        context_arguments = context.arguments if context is not None else None

        coro = self._request(
            client.complete(ref, {"name": argument.name, "value": argument.value}, context_arguments),
            Deadline(self.settings.timeout + _BACKSTOP),
        )
        return await answered_or_none(self.unsupported, "completion/complete", coro) or nothing

    async def _session_for_call(self) -> Client:
        """The session, once the calling key's OAuth token (if the server needs one) is at hand: the shared one, or
        the key's own when its tokens cannot share a 2025-era session."""
        client = self._session()
        if self.credentials is None:
            return client
        await self.credentials.ready_for_call()
        keyed, principal = self._per_key, ACTING.get()
        if keyed is None or principal is None:
            return client
        try:
            return await keyed.client(principal.key_id)
        except Exception as exc:
            raise UpstreamUnavailable(self.name, "down", f"could not open this key's session: {exc}") from None

    @staticmethod
    def _modern(client: Client) -> bool:
        return client.protocol_version in MODERN_PROTOCOL_VERSIONS

    def _session(self) -> Client:
        if self._client is None or self.health.state not in ("ready", "degraded"):
            raise UpstreamUnavailable(self.name, self.health.state, self.health.last_error)
        return self._client

    async def _request(self, coro: Awaitable[R], deadline: Deadline) -> R:
        timeout = self.settings.timeout
        try:
            with deadline:
                result = await coro
            if deadline.expired:
                raise TimeoutError
        except TimeoutError:
            raise UpstreamTimeout(self.name, timeout) from None
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                raise UpstreamTimeout(self.name, timeout) from None
            if exc.code == types.CONNECTION_CLOSED:
                principal = ACTING.get()
                if self._per_key is not None and principal is not None:
                    self._per_key.drop(principal.key_id)  # that key's own session failed, not the connection
                else:
                    self._connection_failed()
                raise UpstreamUnavailable(self.name, "down", self.lost_reason()) from None
            raise UpstreamRejected(self.name, exc.code, exc.message, exc.data) from None
        except ValidationError as exc:
            logger.warning("MCP server %r sent a result that is not valid MCP: %s", self.name, exc)
            raise UpstreamError(self.name, "sent a result that is not valid MCP") from None
        except RuntimeError as exc:
            # The SDK raises RuntimeError for structured content that violates the tool's output schema and for
            # input requests no client can answer (the hub's own work); a 2026-07-28 client's are `InputRequired`.
            raise UpstreamError(self.name, str(exc)) from None
        if result.meta and types.SERVER_INFO_META_KEY in result.meta:
            # The upstream's identity stamp: the client is talking to the hub, which stamps its own.
            result.meta = {k: v for k, v in result.meta.items() if k != types.SERVER_INFO_META_KEY} or None
        return result

    def _connection_failed(self) -> None:
        if self._lost is not None:
            self._lost.set()

    # The connection's background work.

    def _connected_with(self, client: Client, snapshot: Snapshot, lost: anyio.Event) -> None:
        self._client, self._lost, self._refresh_wanted = client, lost, anyio.Event()
        self._fast = self.fast_calls(client)
        self.health.connects += 1
        self.health.protocol_version = client.protocol_version
        info = client.server_info
        self.health.server_info = f"{info.name} {info.version}".strip() if info is not None else None
        self.health.enter("ready")
        self._install(snapshot)
        self.on_connected()

    def _install(self, snapshot: Snapshot) -> None:
        if snapshot != self.snapshot:
            self.snapshot = snapshot
            self.on_snapshot(self.name, snapshot)

    async def _refresh_loop(self, client: Client, lost: anyio.Event) -> None:
        interval = self.hub.refresh_interval or float("inf")
        while True:
            wanted = self._refresh_wanted
            assert wanted is not None
            with anyio.move_on_after(interval):
                await wanted.wait()
            self._refresh_wanted = anyio.Event()
            announced, self._announced = frozenset(self._announced), set()
            try:
                with anyio.fail_after(self.hub.connect_timeout):
                    snapshot = await list_everything(client, self._expose, self.unsupported)
            except MCPError as exc:
                if exc.code == types.CONNECTION_CLOSED:
                    lost.set()
                    return
                self.health.enter("degraded", f"re-listing failed: {exc.message}")
            except (ValidationError, TimeoutError) as exc:
                self.health.enter("degraded", f"re-listing failed: {type(exc).__name__}")
            else:
                self.health.enter("ready")
                if announced and snapshot == self.snapshot:
                    self.on_announced(self.name, announced)
                self._install(snapshot)

    async def _listen(self, client: Client) -> None:
        """2026-07-28 servers announce list changes only on a `subscriptions/listen` stream."""
        caps = client.server_capabilities
        tools = bool(caps.tools and caps.tools.list_changed)
        prompts = bool(caps.prompts and caps.prompts.list_changed)
        resources = bool(caps.resources and caps.resources.list_changed)
        if not (tools or prompts or resources):
            return
        while True:
            try:
                listen = client.listen(
                    tools_list_changed=tools, prompts_list_changed=prompts, resources_list_changed=resources
                )
                async with listen as subscription:
                    async for event in subscription:
                        self._announce(_EVENT_KINDS.get(type(event)))
            except Exception as exc:
                logger.info("MCP server %r: change subscription ended (%s); re-listing on an interval", self.name, exc)
            self.refresh_soon()
            await anyio.sleep(self.hub.backoff_max)

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(
            message,
            types.ToolListChangedNotification
            | types.PromptListChangedNotification
            | types.ResourceListChangedNotification,
        ):
            self._announce(_NOTICE_KINDS[type(message)])
        elif isinstance(message, types.LoggingMessageNotification):
            logger.info("MCP server %r says: %s", self.name, message.params.data)
        elif isinstance(message, Exception):
            logger.warning("MCP server %r: transport error: %s", self.name, message)

    def _announce(self, kind: Kind | None) -> None:
        if kind is not None:
            self._announced.add(kind)
        self.refresh_soon()


_NOTICE_KINDS: dict[type[types.ServerNotification], Kind] = {
    types.ToolListChangedNotification: "tools",
    types.PromptListChangedNotification: "prompts",
    types.ResourceListChangedNotification: "resources",
}
_EVENT_KINDS: dict[type[ServerEvent], Kind] = {
    ToolsListChanged: "tools",
    PromptsListChanged: "prompts",
    ResourcesListChanged: "resources",
}
