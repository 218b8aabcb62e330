"""An MCP server that requires OAuth (the SDK's own resource-server support: `token_verifier` + `AuthSettings`), and
the small authorization server that issues its tokens, both in-process ASGI apps for tests to serve on loopback.

The authorization server (`LoopbackAuthServer`) serves RFC 8414 metadata, `/token` (client_credentials with
client_secret_basic or client_secret_post, authorization_code with PKCE S256, refresh_token with rotation),
`/authorize` (approves at once as `subject`: the "browser step" is a redirect an HTTP client follows) and
`/register` (RFC 7591). Its clock is the test's. The MCP server's tool `whoami` says which subject and client a
call's token belongs to; every `Authorization` header it receives is kept in `seen_authorizations`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class Issued:
    subject: str
    client_id: str
    expires_at: float
    resource: str | None


@dataclass
class Client:
    client_id: str
    secret: str | None
    redirect_uris: list[str] = field(default_factory=list)


class LoopbackAuthServer:
    """A minimal OAuth 2.1 authorization server; `base_url` must be set before the first request."""

    def __init__(self, clock: Callable[[], float], *, ttl: float = 3600.0) -> None:
        self.clock = clock
        self.ttl = ttl
        self.base_url = ""
        self.subject = "alice"
        """Who approves the next authorization."""
        self.clients: dict[str, Client] = {}
        self.access: dict[str, Issued] = {}
        self.refresh: dict[str, Issued] = {}
        self.codes: dict[str, tuple[Issued, str, str]] = {}
        """code -> (grant, redirect_uri, code_challenge)."""
        self.token_requests: list[dict[str, Any]] = []
        """Each token request: its grant, how the client authenticated, whether it was granted (no secrets)."""
        self.registrations = 0

    def add_client(self, client_id: str, secret: str | None, redirect_uris: list[str] | None = None) -> None:
        self.clients[client_id] = Client(client_id, secret, redirect_uris or [])

    def revoke_all(self) -> None:
        """Every access token stops working at once (refresh tokens still do)."""
        self.access.clear()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self.metadata, methods=["GET"]),
                Route("/token", self.token, methods=["POST"]),
                Route("/authorize", self.authorize, methods=["GET"]),
                Route("/register", self.register, methods=["POST"]),
            ]
        )

    async def metadata(self, request: Request) -> Response:
        base = self.base_url
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "registration_endpoint": f"{base}/register",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            }
        )

    async def register(self, request: Request) -> Response:
        body = await request.json()
        self.registrations += 1
        client_id, secret = f"dyn-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        self.add_client(client_id, secret, list(body.get("redirect_uris") or []))
        return JSONResponse(
            {
                "client_id": client_id,
                "client_secret": secret,
                "token_endpoint_auth_method": "client_secret_basic",
                "redirect_uris": body.get("redirect_uris"),
            },
            status_code=201,
        )

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        client = self.clients.get(query.get("client_id", ""))
        redirect = query.get("redirect_uri", "")
        if client is None or (client.redirect_uris and redirect not in client.redirect_uris):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "error_description": "PKCE S256 required"}, 400)
        code = secrets.token_urlsafe(16)
        grant = Issued(self.subject, client.client_id, 0.0, query.get("resource"))
        self.codes[code] = (grant, redirect, query["code_challenge"])
        answer = {"code": code, "state": query.get("state", ""), "iss": self.base_url}
        return RedirectResponse(f"{redirect}?{urlencode(answer)}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        client, method = self._client(request, form)
        grant = str(form.get("grant_type", ""))
        entry: dict[str, Any] = {"grant": grant, "method": method, "resource": form.get("resource"), "ok": False}
        self.token_requests.append(entry)
        if client is None:
            return JSONResponse({"error": "invalid_client", "error_description": "client authentication failed"}, 401)
        if grant == "client_credentials":
            issued = Issued(f"service:{client.client_id}", client.client_id, 0.0, form.get("resource"))  # type: ignore[arg-type]
            entry["ok"] = True
            return self._tokens(issued, refresh=False)
        if grant == "authorization_code":
            found = self.codes.pop(str(form.get("code", "")), None)
            if found is None or found[0].client_id != client.client_id or found[1] != form.get("redirect_uri"):
                return JSONResponse({"error": "invalid_grant"}, 400)
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge != found[2]:
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE verification failed"}, 400)
            entry["ok"] = True
            return self._tokens(found[0], refresh=True)
        if grant == "refresh_token":
            held = self.refresh.pop(str(form.get("refresh_token", "")), None)  # rotation: one use each
            if held is None or held.client_id != client.client_id:
                return JSONResponse({"error": "invalid_grant"}, 400)
            entry["ok"] = True
            return self._tokens(held, refresh=True)
        return JSONResponse({"error": "unsupported_grant_type"}, 400)

    def _client(self, request: Request, form: dict[str, Any]) -> tuple[Client | None, str]:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            client = self.clients.get(client_id)
            return (client if client is not None and client.secret == secret else None), "client_secret_basic"
        client = self.clients.get(str(form.get("client_id", "")))
        if "client_secret" in form:
            ok = client is not None and client.secret == form["client_secret"]
            return (client if ok else None), "client_secret_post"
        return (client if client is not None and client.secret is None else None), "none"

    def _tokens(self, grant: Issued, *, refresh: bool) -> Response:
        token = secrets.token_urlsafe(24)
        self.access[token] = Issued(grant.subject, grant.client_id, self.clock() + self.ttl, grant.resource)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": int(self.ttl)}
        if refresh:
            rotated = secrets.token_urlsafe(24)
            self.refresh[rotated] = grant
            body["refresh_token"] = rotated
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def verify_token(self, token: str) -> AccessToken | None:
        """The MCP server's `TokenVerifier`: tokens this server issued and that have not expired."""
        issued = self.access.get(token)
        if issued is None or self.clock() >= issued.expires_at:
            return None
        return AccessToken(
            token=token,
            client_id=issued.client_id,
            scopes=[],
            expires_at=int(issued.expires_at),
            resource=issued.resource,
            subject=issued.subject,
        )


class SeenHeaders:
    """ASGI wrapper keeping every `Authorization` header the wrapped app receives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen_authorizations: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name.lower() == b"authorization":
                    self.seen_authorizations.append(value.decode())
        await self.app(scope, receive, send)


def protected_mcp(auth_server: LoopbackAuthServer, issuer_url: str, resource_url: str) -> SeenHeaders:
    """The OAuth-protected MCP server (Streamable HTTP at `/mcp`), its tokens checked by `auth_server`."""
    mcp = MCPServer(
        "secure",
        version="1.0",
        token_verifier=auth_server,
        auth=AuthSettings(issuer_url=issuer_url, resource_server_url=resource_url, validate_token_resource=False),
    )

    @mcp.tool()
    def whoami() -> str:
        """Who the call's token belongs to."""
        token = get_access_token()
        return f"{token.subject} via {token.client_id}" if token is not None else "nobody"

    @mcp.prompt()
    def greeting() -> str:
        """A greeting for the token's subject."""
        token = get_access_token()
        return f"Hello {token.subject if token is not None else 'nobody'}"

    return SeenHeaders(mcp.streamable_http_app())
