"""The SDK's Streamable HTTP session manager, with each legacy (2025-era) session held against its key's share.

The SDK caps sessions in all (`mcp.max_sessions`, 503 past it); one key could still open every one of them. This
manager counts each session against the key that opens it (`mcp.per_key.sessions`): the request that would open
one more gets 429 with a JSON-RPC error naming the key and its cap, and the session the SDK had just registered for
it is discarded unused. The SDK ends every session (client DELETE, idle timeout, failed opening, crash, shutdown)
through `_discard_session`, which gives the slot back.

It overrides two private methods of `mcp` 2.3's `StreamableHTTPSessionManager`: the one that serves a new
session's opening request (it has the request's scope, hence the caller) and the one every session ends through.
The SDK offers no public hook for either; `tests/mcp_hub/test_fairness.py` pins the behaviour.

The same two places give each session its own bounded event store (`mcp_hub/resume.py`) for resumable streams,
set on the session's transport before it serves the opening request and dropped when the session ends.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from mcp_hub.access import Caller
from mcp_hub.endpoint import jsonrpc_error_response
from mcp_hub.fairness import KeyCapReached, KeySlots, Slot
from mcp_hub.resume import SessionEventStores
from mcp_hub.server import CALLER_SCOPE_KEY

logger = logging.getLogger(__name__)


class FairSessionManager(StreamableHTTPSessionManager):
    """A `StreamableHTTPSessionManager` that holds each session in `slots` for the key that opened it."""

    def __init__(
        self, *args: Any, slots: KeySlots, event_stores: SessionEventStores | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.slots = slots
        self.event_stores = event_stores
        self._held: dict[str, Slot] = {}

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
