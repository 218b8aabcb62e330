"""The fast path of `/mcp`: a 2026-07-28 `tools/call` or `tools/list` served without the SDK's transport machinery.

`McpEndpoint` has already authenticated the key, read the body within `mcp.max_body_bytes` and decoded it once
(`toolpolicy.jsonbody`); `FastPath.serve` takes that decoded body and either serves the request or returns False,
having done nothing, and the request goes to the SDK's session manager unchanged.

What it takes (`eligible.py`), all decided before any work, the SDK's own checks in the SDK's order:

- a POST whose `MCP-Protocol-Version` header names a 2026-07-28-era version (where the SDK's manager routes it to
  its single-exchange entry), whose body is ONE JSON-RPC request (`jsonrpc` "2.0", a string or integer `id`, object
  `params`) for `tools/call` or `tools/list`;
- that the SDK would dispatch: Host, Origin and Content-Type pass `transport_security`; `Accept` names both JSON and
  SSE (the SDK's checks, on the headers the endpoint read once: `transport_checks.py`); no routing header is
  repeated; the `_meta` envelope passes the SDK's ladder (protocol version, client capabilities,
  `Mcp-Method`/`Mcp-Name` matching the body); and a call's `Mcp-Param-*` headers match the tool's input schema as
  the caller sees it (`param_headers.py`).

Anything else, every refusal included, goes to the SDK: 2025-era requests (with or without a session), other
methods, notifications, batches, malformed envelopes, header mismatches, and a manager in JSON-response mode.

2025-era session calls are not taken here: the session manager (`sessions.py`) hands them to `session_call.py`, the
session fast path, which keeps the session's event stream, event store, idle timer, in-flight count and dispatcher
as the SDK's transport keeps them.

How it serves (`exchange.py`): the same kernel the SDK's entry runs (`serve_one`'s `ServerRunner`: the middleware, so
OpenTelemetry, request-state sealing and error rendering; params and result validated per protocol version; the
hub's handler, so the relay's held calls, bundles, renames, Code Mode, governance and audit), with a `Connection`
built from the envelope as the SDK builds it (`envelopes.py`), in the endpoint's task. The kernel is `HubRunner`
(`kernel.py`), which validates the params once instead of three times, and writes a plain tool result, validated
already by the hub's client, without validating it a second time (`plain_results.py`). The answer is
`application/json` with the SDK's status mapping, or, when a notification (progress, an opted-in log notice) must go
out before the result or the call runs silent past 15 s, an event stream exactly as the SDK would write it. A client
that goes away cancels the call, as it does through the SDK. No `Mcp-Session-Id` is sent: the 2026-07-28 entry
never sends one.
"""

from __future__ import annotations

from typing import Any

from mcp.server.connection import Connection
from mcp.server.runner import aclose_shielded
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp.shared.message import ServerMessageMetadata
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from mcp_hub.fastpath.eligible import FAST_METHODS, Route, accepted, modern_version
from mcp_hub.fastpath.envelopes import connection_for
from mcp_hub.fastpath.exchange import Exchange, settle
from mcp_hub.fastpath.kernel import HubRunner
from mcp_hub.scopes import cancel_scope

__all__ = ["FAST_METHODS", "FastPath"]


class FastPath:
    """Serves what it can of `/mcp` (see the module doc); `enabled=False` (`mcp.fast_path`) leaves all to the SDK."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._security: tuple[TransportSecuritySettings | None, TransportSecurityMiddleware] | None = None
        """The manager's `security_settings` and their checker, made once for them (it holds nothing else)."""

    async def serve(
        self, manager: StreamableHTTPSessionManager, decoded: Any, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """Serve the request and return True, or return False having done nothing (the SDK serves it)."""
        if (
            not self.enabled
            or scope["method"] != "POST"
            or manager.json_response
            or manager._task_group is None  # not running: the SDK says so
            or not modern_version(scope["headers"])
        ):
            return False
        request = Request(scope, receive)
        settings = manager.security_settings
        if self._security is None or self._security[0] is not settings:
            self._security = (settings, TransportSecurityMiddleware(settings))
        security = self._security[1]
        route = await accepted(manager.app, security, manager.json_response, request, decoded)
        if route is None:
            return False
        await _serve(manager, route, request, scope, receive, send)
        return True


async def _serve(
    manager: StreamableHTTPSessionManager, route: Route, request: Request, scope: Scope, receive: Receive, send: Send
) -> None:
    connection = connection_for(route.protocol_version, route.client_info, route.client_capabilities)
    # By position: a class called with keywords builds a dict of them (about 450 Ir a keyword). The SDK metadata's
    # field order is held by a test (`test_fast_path_objects.py`).
    exchange = Exchange(
        request.headers,
        route.request_id,
        ServerMessageMetadata(None, request),  # related_request_id, request_context
        send,
        progress_token_from_params(route.params),
    )
    outcome: dict[str, Any] | Exception | None = None
    with cancel_scope() as handler:  # cancelled by the watcher when the client goes away
        watcher = exchange.start_watching(receive, handler)
        try:
            # What the SDK's `serve_one` does, less what does nothing here (in this frame, not one of its own: this
            # runs every call). The kernel (`ServerRunner._on_request`) runs as `serve_one` runs it; the
            # connection's exit stack is unwound (shielded, bounded: `aclose_shielded`) only when a handler put
            # something on it (a 2026-07-28 request's log level, say), as the shielded scope costs more than the
            # rest of an empty unwind.
            runner = HubRunner(manager.app, connection, manager._lifespan_state)
            try:
                outcome = await runner._on_request(exchange, route.method, dict(route.params))
            finally:
                if _has_callbacks(connection):
                    await aclose_shielded(connection)
        except Exception as exc:
            outcome = exc
        finally:
            exchange.closed = True  # as the SDK closes the handler's stream the moment it returns
            watcher.cancel()
    try:
        if outcome is not None:  # None: the client went away and the call was cancelled
            await exchange.finish(outcome)
    finally:
        if watcher.task is not None:  # (most calls end before their watcher starts: nothing to wait for)
            await settle(watcher)


def _has_callbacks(connection: Connection) -> bool:
    callbacks: Any = getattr(connection.exit_stack, "_exit_callbacks", True)  # CPython's; unknown: assume some
    return bool(callbacks)
