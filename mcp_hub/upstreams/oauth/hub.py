"""`UpstreamOAuth`, the entry point of upstream OAuth: it builds each OAuth server's `Credentials` (`service.py`
for `client_credentials`, `personal.py` for `authorization_code`), owns the httpx2 client that talks to
authorization servers, hands each upstream its credentials (the transports put the bearer on every request,
`transport.py`), and serves `/oauth/upstream/...`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import httpx2
from starlette.routing import BaseRoute

from mcp_hub.upstreams.base import Upstream
from mcp_hub.upstreams.oauth.credentials import Credentials, Emit, OAuthAudit
from mcp_hub.upstreams.oauth.endpoints import AuthServerClient
from mcp_hub.upstreams.oauth.personal import PersonalCredentials
from mcp_hub.upstreams.oauth.routes import UpstreamOAuthRoutes
from mcp_hub.upstreams.oauth.service import ServiceCredentials
from mcp_hub.upstreams.oauth.transport import BearerAuth
from toolpolicy.errors import GatewayError
from toolpolicy.keys import KeyResolver
from toolpolicy.settings import GatewaySettings
from toolpolicy.store.engine import Store
from toolpolicy.store.upstream_tokens import UpstreamTokenStore
from toolpolicy.upstream_oauth import CipherKeyError, Links, OAuthAuth, TokenCipher

__all__ = ["UpstreamOAuth", "UpstreamOAuthConfigError"]

ENCRYPTION_KEY_ENV = "ISTHMUS_OAUTH_ENCRYPTION_KEY"


class UpstreamOAuthConfigError(GatewayError):
    """Upstream OAuth cannot start as configured (no or a bad encryption key)."""


class UpstreamOAuth:
    """The OAuth credentials of every upstream server configured with `auth: {type: oauth}`."""

    def __init__(
        self,
        settings: GatewaySettings,
        store: Store,
        keys: KeyResolver,
        emit: Emit,
        *,
        clock: Callable[[], float] = time.time,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        block = settings.upstream_oauth
        servers = {
            name: server
            for name, server in settings.mcp_servers.items()
            if server.enabled and isinstance(server.auth, OAuthAuth)
        }
        personal = sorted(name for name, server in servers.items() if server.auth.flow == "authorization_code")  # type: ignore[union-attr]
        cipher: TokenCipher | None = None
        if block.encryption_key is not None:
            try:
                cipher = TokenCipher.from_text(block.encryption_key.get_secret_value())
            except CipherKeyError as exc:
                where = f"upstream_oauth.encryption_key (or ${ENCRYPTION_KEY_ENV})"
                raise UpstreamOAuthConfigError(f"{where}: {exc}") from None
        elif personal:
            raise UpstreamOAuthConfigError(
                f"OAuth flow 'authorization_code' (MCP servers: {', '.join(personal)}) stores token sets "
                f"encrypted: set ${ENCRYPTION_KEY_ENV} (or upstream_oauth.encryption_key) to a 32-byte key, e.g. "
                "`openssl rand -base64 32`, the same on every replica"
            )
        self._own_http = http is None
        if http is None and servers:  # no OAuth server, no client
            http = httpx2.AsyncClient(timeout=block.request_timeout, follow_redirects=False)
        self.http = http
        public_url = block.public_url or f"http://{settings.listen}"
        self.credentials: dict[str, Credentials] = {}
        self.personal: dict[str, PersonalCredentials] = {}
        self.links = Links(cipher, clock) if cipher is not None else None
        tokens = UpstreamTokenStore(store, cipher) if cipher is not None else None
        for name, server in servers.items():
            auth = server.auth
            assert isinstance(auth, OAuthAuth) and server.url is not None
            assert http is not None
            endpoints = AuthServerClient(name, http, clock)
            audit = OAuthAudit(emit, name, auth.flow)
            if auth.flow == "client_credentials":
                self.credentials[name] = ServiceCredentials(
                    name, auth, server.url, endpoints=endpoints, audit=audit, clock=clock
                )
                continue
            assert tokens is not None and self.links is not None
            credentials = PersonalCredentials(
                name,
                auth,
                server.url,
                endpoints=endpoints,
                audit=audit,
                clock=clock,
                store=tokens,
                links=self.links,
                public_url=public_url,
                link_window=block.link_window,
            )
            self.credentials[name] = self.personal[name] = credentials
        self._routes = UpstreamOAuthRoutes(self.personal, self.links, keys) if self.links is not None else None

    def attach(self, upstreams: Mapping[str, Upstream]) -> None:
        """Give each OAuth upstream its credentials; a completed authorization wakes a waiting connection."""
        for name, credentials in self.credentials.items():
            upstream = upstreams.get(name)
            if upstream is None:
                continue
            upstream.credentials = credentials
            upstream.http_auth = BearerAuth(credentials)
            if isinstance(credentials, PersonalCredentials):
                credentials.on_authorized = upstream.connect_soon

    def routes(self) -> list[BaseRoute]:
        return self._routes.routes() if self._routes is not None else []

    async def aclose(self) -> None:
        if self._own_http and self.http is not None:
            await self.http.aclose()
