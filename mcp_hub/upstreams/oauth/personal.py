"""Flow `authorization_code`: the server acts for a person, so the hub keeps one token set per (virtual key,
server), sealed in the store (shared by replicas), refreshed `refresh_before` seconds before expiry (a rotated
refresh token replaces the old; a refresh another replica won is adopted, not repeated).

A call for a key without a token set raises `AuthorizationRequired`: the first time in a window (`link_window`) its
message carries the link where the key's owner authorizes (`/oauth/upstream/<server>/start?ticket=...`), later
calls in the window say the authorization is pending. The link redirects to the authorization server with PKCE
(S256) and a sealed state naming the key; `/oauth/upstream/callback` exchanges the code (`complete`).

The connection's own requests (discovery, listings, change subscriptions) use the token set of the key that
authorized most recently: the server's tools are listed once any key has authorized, and each call then carries
its own key's token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import anyio

from mcp_hub.errors import AuthorizationRequired, UpstreamAuthFailed
from mcp_hub.upstreams.oauth.credentials import ACTING, Credentials
from mcp_hub.upstreams.oauth.discovery import AuthServer, discover
from mcp_hub.upstreams.oauth.endpoints import OAuthClient
from toolpolicy.store.upstream_tokens import StoredTokens, UpstreamTokenStore
from toolpolicy.types import Principal
from toolpolicy.upstream_oauth.links import Links, Pending, Ticket, pkce_challenge, pkce_verifier
from toolpolicy.upstream_oauth.tokens import TokenSet

logger = logging.getLogger(__name__)

DEAD_GRANT = frozenset({"invalid_grant", "unauthorized_client"})
"""Refresh errors after which the token set is dropped and the key's owner authorizes again."""


class PersonalCredentials(Credentials):
    per_key = True

    def __init__(
        self,
        *args: Any,
        store: UpstreamTokenStore,
        links: Links,
        public_url: str,
        link_window: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.store = store
        self.links = links
        self.public_url = public_url.rstrip("/")
        self.link_window = link_window
        self.on_authorized: Callable[[], None] = lambda: None
        """Called when a key completed an authorization (the upstream connects at once if it was waiting)."""
        self._cache: dict[str, StoredTokens] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._prompted: dict[str, float] = {}
        """Key id -> when its current link window opened."""
        self._connection_key: str | None = None
        self._auth_server: AuthServer | None = None
        self._client: OAuthClient | None = None
        self._setup = anyio.Lock()

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/oauth/upstream/callback"

    # What the transports ask.

    async def token(self) -> str | None:
        principal = ACTING.get()
        try:
            if principal is not None:
                tokens = await self.tokens_for(principal.key_id)
            else:
                tokens = await self._connection_tokens()
        except UpstreamAuthFailed:
            return None
        return tokens.access_token if tokens is not None else None

    async def rejected(self, token: str) -> str | None:
        principal = ACTING.get()
        key_id = principal.key_id if principal is not None else self._connection_key
        if key_id is None:
            return None
        try:
            tokens = await self.tokens_for(key_id, rejected=token)
        except UpstreamAuthFailed:
            return None
        return tokens.access_token if tokens is not None and tokens.access_token != token else None

    async def ready_for_connection(self) -> None:
        if await self._connection_tokens() is None:
            raise UpstreamAuthFailed(
                self.server,
                "no virtual key has authorized this server yet; a key's owner gets the link from "
                f"GET {self.public_url}/oauth/upstream/{self.server}/link (with the key as bearer token)",
            )

    async def ready_for_call(self) -> None:
        principal = ACTING.get()
        if principal is not None and await self.tokens_for(principal.key_id) is None:
            raise self.required(principal)

    # Token sets.

    async def tokens_for(self, key_id: str, *, rejected: str | None = None) -> TokenSet | None:
        """The key's usable token set (refreshed if due, or if the server rejected `rejected`), or None."""
        held = self._cache.get(key_id)
        if held is not None and rejected is None and self.fresh(held.tokens):
            return held.tokens
        async with self._locks.setdefault(key_id, anyio.Lock()):
            held = self._cache.get(key_id)
            if held is not None and held.tokens.access_token != rejected and self.fresh(held.tokens):
                return held.tokens
            stored = await self.store.get(key_id, self.server)
            if stored is None:
                self._cache.pop(key_id, None)
                return None
            if stored.tokens.access_token != rejected and self.fresh(stored.tokens):
                self._cache[key_id] = stored
                return stored.tokens
            return await self._refresh(key_id, stored)

    async def _refresh(self, key_id: str, stored: StoredTokens) -> TokenSet | None:
        principal = ACTING.get()
        who = principal if principal is not None and principal.key_id == key_id else None
        refresh = stored.tokens.refresh_token
        if refresh is None:
            await self._forget(key_id)
            self._audit_key("token_expired", key_id, who, ok=False, status=401)
            return None
        server = await self._server()
        client = await self._oauth_client()
        form = {"grant_type": "refresh_token", "refresh_token": refresh, "resource": self.resource or ""}
        try:
            answer = await self.endpoints.token(server.token_endpoint, form, client)
        except UpstreamAuthFailed as exc:
            self._audit_key("token_failed", key_id, who, ok=False, error=exc.message)
            if exc.error in DEAD_GRANT:
                await self._forget(key_id)
                return None
            raise
        renewed = stored.tokens.renewed(answer)
        version = await self.store.put(key_id, self.server, renewed, over=stored.version)
        if version is None:  # another replica refreshed first: its result is the one the server honours
            again = await self.store.get(key_id, self.server)
            if again is None:
                self._cache.pop(key_id, None)
                return None
            self._cache[key_id] = again
            return again.tokens
        self._cache[key_id] = StoredTokens(renewed, version)
        self._audit_key("token_refreshed", key_id, who)
        return renewed

    async def disconnect(self, principal: Principal) -> None:
        """Forget the key's token set (at its owner's request); its next call asks for an authorization again."""
        async with self._locks.setdefault(principal.key_id, anyio.Lock()):
            await self._forget(principal.key_id)
        self.audit.for_key("authorization_revoked", principal)

    async def _forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)
        await self.store.delete(key_id, self.server)
        if self._connection_key == key_id:
            self._connection_key = None

    async def _connection_tokens(self) -> TokenSet | None:
        if self._connection_key is not None:
            tokens = await self.tokens_for(self._connection_key)
            if tokens is not None:
                return tokens
            self._connection_key = None
        for key_id in await self.store.keys(self.server):
            tokens = await self.tokens_for(key_id)
            if tokens is not None:
                self._connection_key = key_id
                return tokens
        return None

    def _audit_key(self, event: str, key_id: str, who: Principal | None, **kwargs: object) -> None:
        if who is not None:
            self.audit.for_key(event, who, **kwargs)
        else:
            self.audit.event(event, key_id=key_id, **kwargs)  # type: ignore[arg-type]

    # Authorization.

    def required(self, principal: Principal) -> AuthorizationRequired:
        """The error for a call by a key without a token set: with the link once per window."""
        now = self.clock()
        opened = self._prompted.get(principal.key_id)
        if opened is not None and now < opened + self.link_window:
            left = int(opened + self.link_window - now)
            message = (
                "needs this key's owner to authorize it; the link was given in an earlier result and is valid "
                f"for {left}s more (after that, the next call gives a new one)"
            )
            return AuthorizationRequired(self.server, message, None)
        self._prompted[principal.key_id] = now
        url = self.link(principal)
        self.audit.for_key("authorization_required", principal, ok=False, status=401)
        message = f"needs this key's owner to authorize it first: open {url} in a browser, then call the tool again"
        return AuthorizationRequired(self.server, message, url)

    def link(self, principal: Principal) -> str:
        """A fresh start link for `principal`'s key, valid for `link_window` seconds."""
        ticket = Ticket(
            key_id=principal.key_id,
            server=self.server,
            expires_at=self.clock() + self.link_window,
            key_name=principal.key_name,
            team=principal.team,
            customer=principal.customer,
        )
        query = urlencode({"ticket": self.links.ticket(ticket)})
        return f"{self.public_url}/oauth/upstream/{self.server}/start?{query}"

    async def authorize_url(self, ticket: Ticket) -> str:
        """Where the browser goes for `ticket`: the authorization endpoint, with PKCE S256 and a sealed state."""
        server = await self._server()
        if server.authorization_endpoint is None:
            raise UpstreamAuthFailed(self.server, "the authorization server names no authorization endpoint")
        client = await self._oauth_client()
        verifier = pkce_verifier()
        state = self.links.state(Pending(ticket, verifier))
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            "state": state,
        }
        if self.settings.scopes:
            query["scope"] = " ".join(self.settings.scopes)
        if self.resource:
            query["resource"] = self.resource
        self.audit.event(
            "authorization_started",
            key_id=ticket.key_id,
            key_name=ticket.key_name,
            team=ticket.team,
            customer=ticket.customer,
        )
        separator = "&" if "?" in server.authorization_endpoint else "?"
        return f"{server.authorization_endpoint}{separator}{urlencode(query)}"

    async def complete(self, pending: Pending, code: str, issuer: str | None = None) -> None:
        """Exchange the authorization code and store the key's token set; `issuer` is the redirect's RFC 9207 `iss`,
        which must name the discovered authorization server when sent (against mix-up attacks)."""
        ticket = pending.ticket
        server = await self._server()
        if issuer is not None and server.discovered and issuer != server.issuer:
            raise UpstreamAuthFailed(
                self.server, f"the authorization response came from issuer {issuer!r}, not {server.issuer!r}"
            )
        client = await self._oauth_client()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pending.verifier,
            "resource": self.resource or "",
        }
        audit = {"key_id": ticket.key_id, "key_name": ticket.key_name, "team": ticket.team, "customer": ticket.customer}
        try:
            tokens = await self.endpoints.token(server.token_endpoint, form, client)
        except UpstreamAuthFailed as exc:
            self.audit.event("authorization_failed", ok=False, error=exc.message, **audit)  # type: ignore[arg-type]
            raise
        version = await self.store.put(ticket.key_id, self.server, tokens, over=None)
        assert version is not None
        self._cache[ticket.key_id] = StoredTokens(tokens, version)
        self._prompted.pop(ticket.key_id, None)
        self._connection_key = self._connection_key or ticket.key_id
        self.audit.event("authorization_completed", **audit)  # type: ignore[arg-type]
        self.on_authorized()

    async def _server(self) -> AuthServer:
        if self._auth_server is not None:
            return self._auth_server
        async with self._setup:
            if self._auth_server is None:
                configured = self.settings
                if configured.token_url and configured.authorization_url:
                    found = AuthServer(
                        issuer=configured.authorization_url,
                        discovered=False,
                        token_endpoint=configured.token_url,
                        authorization_endpoint=configured.authorization_url,
                        registration_endpoint=configured.registration_url,
                    )
                else:
                    found = await discover(self.endpoints.http, self.server, self.server_url)
                    found = AuthServer(
                        issuer=found.issuer,
                        token_endpoint=configured.token_url or found.token_endpoint,
                        authorization_endpoint=configured.authorization_url or found.authorization_endpoint,
                        registration_endpoint=configured.registration_url or found.registration_endpoint,
                    )
                self._auth_server = found
            return self._auth_server

    async def _oauth_client(self) -> OAuthClient:
        if self._client is not None:
            return self._client
        settings = self.settings
        configured = self.configured_client()
        if configured is not None:
            self._client = configured
            return configured
        server = await self._server()
        async with self._setup:
            if self._client is None:
                stored = await self.store.client(self.server, server.issuer)
                if stored is not None:
                    self._client = OAuthClient.from_json(stored)
                else:
                    if server.registration_endpoint is None:
                        raise UpstreamAuthFailed(
                            self.server,
                            "no 'client_id' configured and the authorization server offers no dynamic registration",
                        )
                    client = await self.endpoints.register(
                        server.registration_endpoint, self.redirect_uri, settings.scopes
                    )
                    await self.store.put_client(self.server, server.issuer, client.to_json())
                    self.audit.event("client_registered")
                    self._client = client
            return self._client
