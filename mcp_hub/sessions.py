"""The SDK's Streamable HTTP session manager, with each legacy (2025-era) session held against its key's share.

The SDK caps sessions in all (`mcp.max_sessions`, 503 past it); one key could still open every one of them. This
manager counts each session against the key that opens it (`mcp.per_key.sessions`): the request that would open
one more gets 429 with a JSON-RPC error naming the key and its cap, and the session the SDK had just registered for
it is discarded unused. The SDK ends every session (client DELETE, idle timeout, failed opening, crash, shutdown)
through `_discard_session`, which gives the slot back.

A session's DELETE also waits for the POSTs already in flight on it (at most `CLOSE_GRACE` seconds), and any
request that arrives for it meanwhile gets the 404 an ended session gets. The SDK closes a session's streams at
once: a POST caught between starting its response and handing its message on (a session opened and closed within
milliseconds) failed with `ClosedResourceError`, logged a traceback and left its response unfinished ("ASGI
callable returned without completing response").

It overrides three private methods of `mcp` 2.3's `StreamableHTTPSessionManager`: the one that serves a new
session's opening request (it has the request's scope, hence the caller), the one every session ends through, and
the one that routes a request to its session. The SDK offers no public hook for any; `tests/mcp_hub/test_fairness.py`
and `tests/mcp_hub/test_sessions.py` pin the behaviour.

The opening request and the session's end also give each session its own bounded event store
(`mcp_hub/resume.py`) for resumable streams, set on the session's transport before it serves the opening request
and dropped when the session ends.

With `shared` (Redis configured), any replica serves any session (`mcp_hub/shared_sessions`): a request for a
session this process does not serve materialises it from its record; each session's task is this module's own
(`_run_session`, the SDK's `run_server` with a dispatcher minting replica-named request ids and a write stream that
routes messages to the replica holding their stream); a client's answer to another replica's request is passed on
to it, and its `notifications/cancelled` to every replica serving the session; a GET stream records this replica
as its holder while it is open; DELETE ends the session everywhere.

With `calls` (the fast path on), every session's task is `_run_session` too, so that the session fast path
(`mcp_hub/fastpath/session_call.py`) has the session's `Connection`: a `tools/call` or `tools/list` POST by the key
that opened the session is offered to it first (after materialising, and counted among the session's POSTs), and
the session's end cancels the calls it is serving.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from anyio.abc import TaskStatus
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.connection import Connection
from mcp.server.runner import serve_connection
from mcp.server.streamable_http import GET_STREAM_KEY, MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager, _send_and_report_status
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mcp_hub.access import Caller
from mcp_hub.endpoint import BODY_SCOPE_KEY, jsonrpc_error_response
from mcp_hub.fairness import KeyCapReached, KeySlots, Slot
from mcp_hub.fastpath.session_call import SessionCalls
from mcp_hub.request_headers import request_headers
from mcp_hub.resume import SessionEventStores
from mcp_hub.server import CALLER_SCOPE_KEY
from toolpolicy.errors import GatewayError

if TYPE_CHECKING:
    # Imported where a shared session is served: they need redis-py, which a gateway without `redis:` never loads.
    from mcp_hub.shared_sessions import SharedSessions
    from mcp_hub.shared_sessions.directory import SessionRecord
    from mcp_hub.shared_sessions.events import RedisEventStores

logger = logging.getLogger(__name__)

CLOSE_GRACE = 5.0
"""Seconds a session's DELETE waits for the POSTs in flight on it before the session is closed regardless."""


@dataclass
class _InFlight:
    """The POSTs being served on one session."""

    count: int = 0
    settled: anyio.Event = field(default_factory=anyio.Event)


def _requestor(scope: Scope) -> AuthorizationContext | None:
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


def _session_not_found() -> Response:
    """What the SDK answers for a session it does not know: 404 with a JSON-RPC error (the spec's 404)."""
    error = {"code": types.INVALID_REQUEST, "message": "Session not found"}
    return Response(json.dumps({"jsonrpc": "2.0", "id": None, "error": error}), 404, media_type="application/json")


class FairSessionManager(StreamableHTTPSessionManager):
    """A `StreamableHTTPSessionManager` that holds each session in `slots` for the key that opened it."""

    def __init__(
        self,
        *args: Any,
        slots: KeySlots,
        event_stores: SessionEventStores | RedisEventStores | None = None,
        shared: SharedSessions | None = None,
        calls: SessionCalls | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.slots = slots
        self.calls = calls
        """The session fast path (`mcp_hub/fastpath/session_call.py`): `tools/call` and `tools/list` in a session."""
        self.event_stores = event_stores
        self.shared = shared
        """With Redis: sessions any replica serves (`mcp_hub/shared_sessions`); None keeps them in this process."""
        self._held: dict[str, Slot] = {}
        self._posts: dict[str, _InFlight] = {}
        self._closing: set[str] = set()

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = request_headers(scope).get(MCP_SESSION_ID_HEADER)
        if self.shared is not None and session_id is not None:
            try:
                if not await self._shared_request(session_id, scope, receive, send):
                    return
            except GatewayError as exc:
                await jsonrpc_error_response(exc)(scope, receive, send)
                return
        if session_id is None or session_id not in self._server_instances:
            await super()._handle_stateful_request(scope, receive, send)  # opens one, or answers 404
        elif session_id in self._closing:
            await _session_not_found()(scope, receive, send)
        elif scope["method"] == "DELETE" and self._is_owner(session_id, scope):
            await self._close_after_posts(session_id, scope, receive, send)
        elif scope["method"] == "POST":
            posts = self._posts.get(session_id)
            if posts is None:  # (not `setdefault`: its default, an event and all, would be built for every POST)
                posts = self._posts[session_id] = _InFlight()
            posts.count += 1
            try:
                # Only for the key that opened the session; any other gets the SDK's 404.
                if (
                    self.calls is None
                    or not self._is_owner(session_id, scope)
                    or not await self.calls.serve(self, session_id, scope.get(BODY_SCOPE_KEY), scope, receive, send)
                ):
                    await super()._handle_stateful_request(scope, receive, send)
            finally:
                posts.count -= 1
                if not posts.count:
                    posts.settled.set()
                    if self._posts.get(session_id) is posts:
                        del self._posts[session_id]
        elif scope["method"] == "GET" and self.shared is not None and self._is_owner(session_id, scope):
            await self._hold_stream(session_id, scope, receive, send)
        else:
            await super()._handle_stateful_request(scope, receive, send)

    async def _shared_request(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve a shared session here if it is not yet; False if the request was answered already (an answer to
        a request another replica sent, passed on to it)."""
        assert self.shared is not None
        if session_id not in self._server_instances and not await self._materialise(session_id, scope):
            return True  # not a session, or not this key's: the SDK answers 404
        if not self._is_owner(session_id, scope):
            return True
        await self.shared.touch(session_id)
        body = scope.get(BODY_SCOPE_KEY)
        if scope["method"] == "POST" and isinstance(body, dict) and "method" not in body:
            replica = self.shared.owner_of(body.get("id"))
            if replica is not None:
                if not await self.shared.forward_in(replica, session_id, body):
                    logger.info("session %s: an answer for replica %s, which is gone, dropped", session_id[:8], replica)
                await Response(status_code=202)(scope, receive, send)
                return False
        elif scope["method"] == "POST" and isinstance(body, dict) and body.get("method") == "notifications/cancelled":
            await self.shared.cancelled(session_id, body)  # the request it names may run on another replica
        return True

    async def _hold_stream(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        """A GET stream: messages other replicas produce for it are published here while it is open."""
        assert self.shared is not None
        from mcp_hub.shared_sessions.events import RedisEventStores

        resumed = "last-event-id" in Headers(scope=scope)
        if not resumed and GET_STREAM_KEY in self._server_instances[session_id]._request_streams:
            await super()._handle_stateful_request(scope, receive, send)  # a second one: the SDK answers 409
            return
        if not resumed:
            await self.shared.hold(session_id, GET_STREAM_KEY)
        try:
            await super()._handle_stateful_request(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                store = self.event_stores.get(session_id) if isinstance(self.event_stores, RedisEventStores) else None
                streams = set(store.resumed) if store is not None and resumed else set()
                for stream in streams if resumed else {GET_STREAM_KEY}:
                    await self.shared.release(session_id, stream)
                if store is not None:
                    store.resumed -= streams

    async def _materialise(self, session_id: str, scope: Scope) -> bool:
        """Serve here a session another replica opened, from its record; False if there is none for this key."""
        assert self.shared is not None and self._task_group is not None
        record = await self.shared.load(session_id)
        requestor = _requestor(scope)
        if record is None or record.owner != requestor:
            return False
        async with self._session_creation_lock:
            if session_id in self._server_instances:
                return True  # a concurrent request materialised it
            transport = self._transport(session_id)
            self._server_instances[session_id] = transport
            if requestor is not None:
                self._session_owners[session_id] = requestor
            # Started under the lock (no I/O), so a concurrent request for it finds it connected.
            await self._task_group.start(self._run_session, transport, record)
        logger.info("session %s materialised on this replica", session_id[:8])
        return True

    def _transport(self, session_id: str) -> StreamableHTTPServerTransport:
        transport = StreamableHTTPServerTransport(
            mcp_session_id=session_id,
            is_json_response_enabled=self.json_response,
            event_store=self.event_stores.open(session_id) if self.event_stores is not None else None,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )
        return transport

    async def _run_session(
        self,
        transport: StreamableHTTPServerTransport,
        record: SessionRecord | None,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """The SDK's session task (`run_server` in `_serve_opening_request`, with `serve_loop`'s dispatcher), whose
        `Connection` the session fast path serves calls on. For a shared session, requests to the client carry this
        replica in their ids, messages go to the replica holding their stream, and a materialised session starts
        initialised."""
        session_id = transport.mcp_session_id
        assert session_id is not None
        async with transport.connect() as (read_stream, write_stream):
            dispatcher: JSONRPCDispatcher[TransportContext]
            if self.shared is None:
                dispatcher = JSONRPCDispatcher(read_stream, write_stream, inline_methods=frozenset({"initialize"}))
            else:
                from mcp_hub.shared_sessions.dispatcher import ReplicaDispatcher
                from mcp_hub.shared_sessions.outbound import RoutedWrite

                routed = RoutedWrite(write_stream, transport, session_id, self.shared.route)
                dispatcher = ReplicaDispatcher(
                    read_stream, routed, inline_methods=frozenset({"initialize"}), replica=self.shared.replica
                )
            connection = Connection.for_loop(dispatcher, session_id=session_id)
            if self.shared is not None:
                from mcp_hub.shared_sessions import LocalSession

                self.shared.attach(session_id, LocalSession(transport, connection, write_stream))
                if record is not None:
                    self.shared.restore(connection, record)
            if self.calls is not None:
                self.calls.attach(session_id, connection)
            task_status.started()
            try:
                idle_scope = transport.idle_scope or anyio.CancelScope()
                with idle_scope:
                    await serve_connection(
                        self.app, dispatcher, connection=connection, lifespan_state=self._lifespan_state
                    )
                if idle_scope.cancelled_caught:
                    logger.info("session %s idle on this replica", session_id[:8])
            except Exception:
                logger.exception("session %s crashed", session_id[:8])
            finally:
                await self._discard_session(session_id, transport)

    async def end_here(self, session_id: str) -> None:
        """End this replica's copy of a session (another replica's DELETE)."""
        transport = self._server_instances.get(session_id)
        if transport is not None:
            await self._discard_session(session_id, transport)

    def _is_owner(self, session_id: str, scope: Scope) -> bool:
        """Whether the request comes with the credential that opened the session (else the SDK says 404)."""
        return _requestor(scope) == self._session_owners.get(session_id)

    async def _close_after_posts(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        self._closing.add(session_id)
        try:
            posts = self._posts.get(session_id)
            if posts is not None:
                with anyio.move_on_after(CLOSE_GRACE):
                    await posts.settled.wait()
            if self.shared is not None:
                # Ended everywhere first, so this copy's end hands nothing (its subscriptions) to the others.
                await self.shared.end(session_id)
            await super()._handle_stateful_request(scope, receive, send)
        finally:
            self._closing.discard(session_id)

    async def _serve_opening_request(
        self, http_transport: StreamableHTTPServerTransport, scope: Scope, receive: Receive, send: Send
    ) -> None:
        session_id = http_transport.mcp_session_id
        assert session_id is not None
        caller = scope.get(CALLER_SCOPE_KEY)
        if isinstance(caller, Caller):
            try:
                self._held[session_id] = self.slots.acquire(caller.principal)
            except KeyCapReached as exc:
                await self._discard_session(session_id, http_transport)
                await jsonrpc_error_response(exc)(scope, receive, send)
                return
        if self.event_stores is not None:
            # The SDK's manager hands every session one shared store; ours are per session (see resume.py).
            http_transport._event_store = self.event_stores.open(session_id)
        if self.shared is None and self.calls is None:
            await super()._serve_opening_request(http_transport, scope, receive, send)
            return
        # As the SDK's, with this module's session task.
        established = False
        try:
            assert self._task_group is not None
            await self._task_group.start(self._run_session, http_transport, None)
            status = await _send_and_report_status(http_transport.handle_request, scope, receive, send)
            established = status is not None and status < 400
        finally:
            if not established:
                await self._discard_session(session_id, http_transport)

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        slot = self._held.pop(session_id, None)
        if slot is not None:
            slot.release()
        if self.event_stores is not None:
            self.event_stores.close(session_id)
        if self.calls is not None:
            self.calls.detach(session_id)
        await super()._discard_session(session_id, transport)
        if self.shared is not None:
            with anyio.CancelScope(shield=True):
                await self.shared.detach(session_id)
