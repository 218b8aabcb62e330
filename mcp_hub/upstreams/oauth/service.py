"""Flow `client_credentials`: one token for the server, shared by every key, fetched at the token endpoint
(client_secret_basic by default, or client_secret_post), cached, and fetched anew `refresh_before` seconds before it
expires or when the server rejects it.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from mcp_hub.errors import UpstreamAuthFailed
from mcp_hub.upstreams.oauth.credentials import Credentials
from mcp_hub.upstreams.oauth.discovery import AuthServer, discover
from toolpolicy.upstream_oauth.tokens import TokenSet

logger = logging.getLogger(__name__)


class ServiceCredentials(Credentials):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        client = self.configured_client()
        assert client is not None  # the settings require a client_id for this flow
        self.client = client
        self._tokens: TokenSet | None = None
        self._token_url = self.settings.token_url
        self._lock = anyio.Lock()

    async def token(self) -> str | None:
        tokens = self._tokens
        if tokens is not None and self.fresh(tokens):
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
        if tokens is None or not self.fresh(tokens):
            await self._renew(stale=tokens)

    async def ready_for_call(self) -> None:
        await self.ready_for_connection()

    async def _renew(self, *, stale: TokenSet | None, force: bool = False) -> TokenSet:
        async with self._lock:
            tokens = self._tokens
            if tokens is not None and tokens is not stale and self.fresh(tokens):
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
