"""Flow `client_credentials`: one token for the server, shared by every key, fetched at the token endpoint
(client_secret_basic by default, or client_secret_post), cached, and fetched anew `refresh_before` seconds before it
expires or when the server rejects it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from mcp_hub.errors import UpstreamAuthFailed
from mcp_hub.upstreams.oauth.credentials import Credentials, OAuthAudit
from mcp_hub.upstreams.oauth.discovery import AuthServer, discover
from mcp_hub.upstreams.oauth.endpoints import AuthServerClient, OAuthClient
from toolpolicy.upstream_oauth.settings import OAuthAuth
from toolpolicy.upstream_oauth.tokens import TokenSet

logger = logging.getLogger(__name__)


class ServiceCredentials(Credentials):
    def __init__(
        self,
        server: str,
        settings: OAuthAuth,
        server_url: str,
        *,
        endpoints: AuthServerClient,
        audit: OAuthAudit,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(server, settings, server_url)
        assert settings.client_id is not None
        secret = settings.client_secret.get_secret_value() if settings.client_secret else None
        self.client = OAuthClient(settings.client_id, secret, settings.auth_method)
        self.endpoints = endpoints
        self.audit = audit
        self.clock = clock
        self._tokens: TokenSet | None = None
        self._token_url = settings.token_url
        self._lock = anyio.Lock()

    async def token(self) -> str | None:
        tokens = self._tokens
        if tokens is not None and tokens.fresh(self.clock(), self.settings.refresh_before):
            return tokens.access_token
        try:
            return (await self._renew(stale=tokens)).access_token
        except UpstreamAuthFailed:
            return None  # the request goes out without one; the call's own check said why already

    async def rejected(self, token: str) -> str | None:
        current = self._tokens
        if current is None or current.access_token != token:
            return current.access_token if current is not None else None  # already renewed by another request
        try:
            return (await self._renew(stale=current, force=True)).access_token
        except UpstreamAuthFailed:
            return None

    async def ready_for_connection(self) -> None:
        tokens = self._tokens
        if tokens is None or not tokens.fresh(self.clock(), self.settings.refresh_before):
            await self._renew(stale=tokens)

    async def ready_for_call(self) -> None:
        await self.ready_for_connection()

    async def _renew(self, *, stale: TokenSet | None, force: bool = False) -> TokenSet:
        async with self._lock:
            tokens = self._tokens
            if tokens is not None and tokens is not stale and tokens.fresh(self.clock(), self.settings.refresh_before):
                return tokens  # another request renewed it while this one waited
            if force and tokens is not None and tokens is not stale:
                return tokens
            try:
                url = self._token_url or (await self._discovered()).token_endpoint
                self._token_url = url
                form = {"grant_type": "client_credentials", "scope": " ".join(self.settings.scopes)}
                if self.resource:
                    form["resource"] = self.resource
                fresh = await self.endpoints.token(url, form, self.client)
            except UpstreamAuthFailed as exc:
                self._tokens = None
                self.audit.event("token_failed", ok=False, error=exc.message)
                logger.warning("%s", exc.message)
                raise
            self._tokens = fresh
            self.audit.event("token_refreshed" if stale is not None else "token_fetched")
            return fresh

    async def _discovered(self) -> AuthServer:
        return await discover(self.endpoints.http, self.server, self.server_url)
