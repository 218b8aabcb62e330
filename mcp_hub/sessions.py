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
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mcp_hub.access import Caller
from mcp_hub.endpoint import jsonrpc_error_response
from mcp_hub.fairness import KeyCapReached, KeySlots, Slot
from mcp_hub.resume import SessionEventStores
from mcp_hub.server import CALLER_SCOPE_KEY

logger = logging.getLogger(__name__)

CLOSE_GRACE = 5.0
"""Seconds a session's DELETE waits for the POSTs in flight on it before the session is closed regardless."""


@dataclass
class _InFlight:
    """The POSTs being served on one session."""

    count: int = 0
    settled: anyio.Event = field(default_factory=anyio.Event)


def _session_not_found() -> Response:
    """What the SDK answers for a session it does not know: 404 with a JSON-RPC error (the spec's 404)."""
    error = {"code": types.INVALID_REQUEST, "message": "Session not found"}
    return Response(json.dumps({"jsonrpc": "2.0", "id": None, "error": error}), 404, media_type="application/json")


class FairSessionManager(StreamableHTTPSessionManager):
    """A `StreamableHTTPSessionManager` that holds each session in `slots` for the key that opened it."""

    def __init__(
        self, *args: Any, slots: KeySlots, event_stores: SessionEventStores | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.slots = slots
        self.event_stores = event_stores
        self._held: dict[str, Slot] = {}
        self._posts: dict[str, _InFlight] = {}
        self._closing: set[str] = set()

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = Headers(scope=scope).get(MCP_SESSION_ID_HEADER)
        if session_id is None or session_id not in self._server_instances:
            await super()._handle_stateful_request(scope, receive, send)  # opens one, or answers 404
        elif session_id in self._closing:
            await _session_not_found()(scope, receive, send)
        elif scope["method"] == "DELETE" and self._is_owner(session_id, scope):
            await self._close_after_posts(session_id, scope, receive, send)
        elif scope["method"] == "POST":
            posts = self._posts.setdefault(session_id, _InFlight())
            posts.count += 1
            try:
                await super()._handle_stateful_request(scope, receive, send)
            finally:
                posts.count -= 1
                if not posts.count:
                    posts.settled.set()
                    if self._posts.get(session_id) is posts:
                        del self._posts[session_id]
        else:
            await super()._handle_stateful_request(scope, receive, send)

    def _is_owner(self, session_id: str, scope: Scope) -> bool:
        """Whether the request comes with the credential that opened the session (else the SDK says 404)."""
        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        return requestor == self._session_owners.get(session_id)

    async def _close_after_posts(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        self._closing.add(session_id)
        try:
            posts = self._posts.get(session_id)
            if posts is not None:
                with anyio.move_on_after(CLOSE_GRACE):
                    await posts.settled.wait()
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
        await super()._serve_opening_request(http_transport, scope, receive, send)

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        slot = self._held.pop(session_id, None)
        if slot is not None:
            slot.release()
        if self.event_stores is not None:
            self.event_stores.close(session_id)
        await super()._discard_session(session_id, transport)
