"""Server middleware writing what a 2025-era session's client settles into the session's shared record.

`initialize` (owner, negotiated version, client info and capabilities) is recorded before its response goes out,
so the client's next request, wherever it lands, finds the record. `logging/setLevel` is recorded and broadcast to
every replica serving the session.
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from mcp_hub.relay.calls import connection_of
from mcp_hub.shared_sessions.coordinator import SharedSessions

RECORDED_METHODS = frozenset({"initialize", "logging/setLevel"})
"""The methods whose outcome is recorded; any other request passes through untouched (`passes_on`)."""


class RecordSessions:
    def __init__(self, shared: SharedSessions) -> None:
        self.shared = shared

    def passes_on(self, ctx: ServerRequestContext[Any, Any]) -> bool:
        """Whether this link only calls the next with `ctx` and hands back its outcome as it is."""
        return ctx.method not in RECORDED_METHODS

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method not in RECORDED_METHODS or ctx.request is None:
            return result
        connection = connection_of(ctx.session)
        session_id = connection.session_id if connection is not None else None
        if session_id is None:
            return result
        params = ctx.params or {}
        if ctx.method == "initialize" and isinstance(result, dict):
            user = ctx.request.scope.get("user")
            owner = dict(authorization_context(user)) if isinstance(user, AuthenticatedUser) else None
            await self.shared.created(session_id, owner, str(result.get("protocolVersion")), dict(params))
        elif ctx.method == "logging/setLevel" and isinstance(level := params.get("level"), str):
            await self.shared.level_set(session_id, level)
        return result
