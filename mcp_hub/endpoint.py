"""`/mcp` and `/mcp/<server>`: authenticate the key, then hand the request to the SDK's Streamable HTTP manager.

Pure ASGI. What it adds in front of the SDK transport (which does Host/Origin checks, sessions, both eras, and
JSON-RPC parsing):

- a missing, unknown, revoked or expired key gets 401 with a JSON-RPC error body, before anything else;
- `/mcp/<name>` serves the server or the bundle of that name (config keeps the two apart); any other name, or a
  disabled server, gets 404;
- a POST body goes through the gateway's shared reader and decoder first (`toolpolicy.jsonbody`), so it is held
  to `mcp.max_body_bytes` while it streams in (413 with a JSON-RPC error body, where the SDK answers plain text)
  and refused with a JSON-RPC parse error when it is JSON the SDK would pass on but nothing behind it can use:
  `NaN`, `Infinity`, `1e309` (the SDK's modern-era parser takes them, and lone `\ud800` escapes too);
- a 2026-07-28 `tools/call` or `tools/list` is served by the fast path (`mcp_hub/fastpath`, `mcp.fast_path`) from
  that one decoded body, and everything else (or everything, with the fast path off) by the SDK;
- the request's `Caller` goes into the scope for the handlers, and the key's identity into `scope["user"]`, so
  the SDK binds each 2025-era session to the key (and endpoint) that opened it: another key presenting the same
  `Mcp-Session-Id` is told the session does not exist.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecuritySettings
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_hub.access import NARROW_HEADER, Caller, narrowing
from mcp_hub.bundles import Bundle
from mcp_hub.errors import UnknownServer
from mcp_hub.fastpath import FastPath
from mcp_hub.param_headers import CURRENT_CALLER
from mcp_hub.request_headers import HEADERS_SCOPE_KEY, RequestHeaders, request_headers
from mcp_hub.server import CALLER_SCOPE_KEY
from toolpolicy.credentials import presented_key
from toolpolicy.errors import GatewayError, InvalidRequest, PayloadTooLarge, ServiceUnavailable
from toolpolicy.jsonbody import decode_json, receive_body
from toolpolicy.settings import GatewaySettings
from toolpolicy.types import Principal

if TYPE_CHECKING:
    from toolpolicy.oauth.resolver import CredentialResolver  # with joserfc behind it: only OAuth loads it

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "")


_NO_BODY = object()
"""The decoded body of a request that has none (not a POST)."""

_USERS_KEPT = 4096
"""Keys (and endpoints) whose `scope["user"]` `McpEndpoint` keeps made; beyond that it starts over."""
_CALLERS_KEPT = 4096
"""Callers `McpEndpoint` keeps made (per key, endpoint and narrowing header); beyond that it starts over."""
BODY_SCOPE_KEY = "isthmus.mcp.body"
"""Where a POST's decoded body is left for the session manager (which passes on answers meant for another replica)."""

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


Challenge = Callable[[str | None], str]
"""The `WWW-Authenticate` value of a 401 on `/mcp` (None) or `/mcp/<name>`: with OAuth on, it names the resource
metadata (RFC 9728), which is how MCP clients discover where to sign in."""


def jsonrpc_error_response(
    error: GatewayError, *, request_id: object = None, code: int | None = None, challenge: str | None = None
) -> Response:
    code = error.jsonrpc_code if code is None else code
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": error.message}}
    headers = None
    if error.status == 401:
        headers = {"WWW-Authenticate": challenge or 'Bearer realm="isthmus"'}
        if challenge and error.code == "invalid_token":
            headers["WWW-Authenticate"] += ', error="invalid_token"'
    return Response(json.dumps(body), status_code=error.status, media_type="application/json", headers=headers)


def transport_security(settings: GatewaySettings) -> TransportSecuritySettings:
    """The Host/Origin allowlists of `/mcp`, from `mcp.allowed_hosts` or derived from `listen`."""
    hub = settings.mcp
    hosts = hub.allowed_hosts
    if hosts is None:
        host = settings.listen.rpartition(":")[0]
        if host in WILDCARD_HOSTS:
            # Every request needs a key a DNS-rebinding page cannot present; name the hosts to check them anyway.
            logger.info("MCP hub: listening on all interfaces, so Host headers are not checked (set mcp.allowed_hosts)")
            return TransportSecuritySettings(enable_dns_rebinding_protection=False)
        hosts = LOOPBACK_HOSTS if host in ("127.0.0.1", "localhost", "::1", "[::1]") else [host, f"{host}:*"]
    if "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    origins = hub.allowed_origins
    if origins is None:
        origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class McpEndpoint:
    """The ASGI app behind both MCP routes."""

    def __init__(
        self,
        keys: CredentialResolver,
        servers: Collection[str],
        manager: Callable[[], StreamableHTTPSessionManager | None],
        code_mode_servers: frozenset[str] = frozenset(),
        *,
        max_body_bytes: int,
        bundles: Mapping[str, Bundle] | None = None,
        fast_path: bool = True,
        challenge: Challenge | None = None,
    ) -> None:
        self.keys = keys
        self.challenge = challenge
        self.servers = servers
        self.manager = manager
        self.code_mode_servers = code_mode_servers
        self.max_body_bytes = max_body_bytes
        self.bundles: Mapping[str, Bundle] = bundles or {}
        self.fast_path = FastPath(enabled=fast_path)
        self._users: dict[tuple[str, str], AuthenticatedUser] = {}
        self._callers: dict[tuple[str, str | None, str | None], Caller] = {}
        """The last `Caller` made per key, endpoint (server or bundle) and narrowing header (`_caller`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            manager = self.manager()
            if manager is None:
                raise ServiceUnavailable("the MCP hub is not running")
            server = scope.get("path_params", {}).get("server")
            bundle = self.bundles.get(server) if server is not None else None
            if bundle is not None:
                server = None
            elif server is not None and server not in self.servers:
                raise UnknownServer(server)
            headers = scope[HEADERS_SCOPE_KEY] = RequestHeaders(scope["headers"])
            secret = presented_key(headers)
            principal = await self.keys.resolve(secret)
        except GatewayError as exc:
            logger.info("MCP request to %s refused: %s (%s)", scope.get("path"), exc.reason, exc.message)
            name = scope.get("path_params", {}).get("server")
            challenge = self.challenge(name) if self.challenge is not None and exc.status == 401 else None
            await jsonrpc_error_response(exc, challenge=challenge)(scope, receive, send)
            return
        except Exception:
            logger.exception("MCP hub: resolving a key failed")
            await jsonrpc_error_response(ServiceUnavailable("the key store is unreachable"))(scope, receive, send)
            return
        assert secret is not None
        decoded: object = _NO_BODY
        if scope.get("method") == "POST":
            try:
                receive, decoded = await self._checked_body(scope, receive)
            except PayloadTooLarge as exc:
                await jsonrpc_error_response(exc, code=INVALID_REQUEST)(scope, receive, send)
                return
            except InvalidRequest as exc:
                await jsonrpc_error_response(exc, code=PARSE_ERROR)(scope, receive, send)
                return
        caller = self._caller(principal, secret, server, headers, bundle)
        scope[CALLER_SCOPE_KEY] = caller
        if decoded is not _NO_BODY:
            scope[BODY_SCOPE_KEY] = decoded
        scope["user"] = self._user(principal.key_id, caller.endpoint)
        current = CURRENT_CALLER.set(caller)  # for the SDK's `Mcp-Param-*` check (param_headers.py)
        try:
            if decoded is _NO_BODY:
                await manager.handle_request(scope, receive, send)
            elif not await self.fast_path.serve(manager, decoded, scope, receive, send):
                await sdk_entry(manager, self.max_body_bytes, headers)(scope, receive, send)
        finally:
            CURRENT_CALLER.reset(current)

    def _caller(
        self, principal: Principal, secret: str, server: str | None, headers: RequestHeaders, bundle: Bundle | None
    ) -> Caller:
        """The request's `Caller`: the one made for an earlier request with the very same principal, key, endpoint,
        narrowing header and Code Mode servers, else a new one (a frozen dataclass, its `__init__` and the narrowing
        globs cost more than finding it)."""
        narrow = headers.get(NARROW_HEADER)
        key = (principal.key_id, server if bundle is None else bundle.name, narrow)
        known = self._callers.get(key)
        if (
            known is not None
            and known.principal is principal
            and known.secret == secret
            and known.bundle is bundle
            and known.code_mode_servers is self.code_mode_servers
        ):
            return known
        if len(self._callers) >= _CALLERS_KEPT:
            self._callers.clear()
        caller = Caller(principal, secret, server, narrowing(headers), self.code_mode_servers, bundle)
        self._callers[key] = caller
        return caller

    def _user(self, key_id: str, endpoint: str) -> AuthenticatedUser:
        """The SDK's user for a key on an endpoint: made once (a pydantic token per request costs), then reused."""
        user = self._users.get((key_id, endpoint))
        if user is None:
            if len(self._users) >= _USERS_KEPT:
                self._users.clear()
            token = AccessToken(token=key_id, client_id=key_id, scopes=[], subject=endpoint)
            user = self._users[(key_id, endpoint)] = AuthenticatedUser(token)
        return user

    async def _checked_body(self, scope: Scope, receive: Receive) -> tuple[Receive, Any]:
        """Read and check the body; the decoded body, and a `receive` that replays it to the SDK."""
        body = await receive_body(receive, request_headers(scope), self.max_body_bytes, disconnected=ClientDisconnect)
        decoded = decode_json(body)
        pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        return replay, decoded


def sdk_entry(manager: StreamableHTTPSessionManager, read_within: int, headers: RequestHeaders) -> ASGIApp:
    """The SDK manager's entry for a POST whose body was read within `read_within` bytes: past its body-size check
    (`RequestBodyLimitMiddleware`) when that check cannot refuse it, else `handle_request`, the check included.

    The check refuses a declared `Content-Length` over its limit (read by `int`) and a body over it, then replays
    the body it read as one message, as the endpoint's `receive` already does. Where its limit is no smaller than
    `read_within` and the declared length is plain digits (which `receive_body` held to `read_within`), or absent, it
    passes the request on unchanged: it is skipped, with its copy of the body and a coroutine layer on every
    `receive`.
    """
    limiter = manager.asgi_app
    if not isinstance(limiter, RequestBodyLimitMiddleware) or limiter.max_body_size < read_within:
        return manager.handle_request
    declared = headers.get("content-length")
    if declared is not None and not (declared.isascii() and declared.isdigit()):
        return manager.handle_request
    return limiter.app
