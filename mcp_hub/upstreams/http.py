"""Upstreams over Streamable HTTP (`transport: streamable-http`, the default for a `url`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
from mcp import Client
from mcp.client._transport import TransportStreams
from mcp.client.streamable_http import streamable_http_client

from mcp_hub.polling import on_upstream_request
from mcp_hub.relay import elicitation_timeout
from mcp_hub.upstreams.base import CLIENT_INFO, Upstream
from mcp_hub.upstreams.fast_call import FastCalls
from mcp_hub.upstreams.fast_http import FastHttp
from mcp_hub.upstreams.key_sessions import KeySessions

READ_SLACK = 30.0
"""Seconds added to the longest a call may wait (`longest_quiet`) for the HTTP read timeout, so the call's own
timeouts fire first."""


def redacted(url: str) -> str:
    """The URL without user info, query or fragment, which may carry credentials: for logs and the admin API."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, f"{host}:{parts.port}" if parts.port else host, parts.path, "", ""))


def remote_headers(upstream: Upstream) -> dict[str, str]:
    """The server's static headers (`headers:`, then `auth: {type: headers}`'s, which win)."""
    headers = {name: value.get_secret_value() for name, value in upstream.settings.headers.items()}
    auth = upstream.settings.auth
    if auth is not None and auth.type == "headers":
        headers.update((name, value.get_secret_value()) for name, value in auth.headers.items())
    return headers


def longest_quiet(upstream: Upstream) -> float:
    """Seconds a call's stream may stay quiet: its timeout, or a client's user answering an elicitation."""
    return max(upstream.settings.timeout, elicitation_timeout(upstream.settings, upstream.hub)) + READ_SLACK


def without_cookies(client: httpx2.AsyncClient) -> httpx2.AsyncClient:
    """`client`, made to neither keep nor send cookies (its jar's policy allows no domain)."""
    client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return client


def remote_timeout(upstream: Upstream) -> httpx2.Timeout:
    return httpx2.Timeout(upstream.hub.connect_timeout, read=longest_quiet(upstream))


class HttpUpstream(Upstream):
    kind = "streamable-http"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._http: FastHttp | None = None
        """The raw HTTP client of the current connection, for the `tools/call` fast path."""
        self._key_http: httpx2.AsyncClient | None = None
        """The pooled client of the current connection's per-key sessions (`key_sessions.py`)."""

    def fast_calls(self, client: Client) -> FastCalls | None:
        if self._http is None or not self.settings.fast_path:
            return None
        return FastCalls(self._http, client, self.relay)

    def describe(self) -> str:
        return f"URL {redacted(self.settings.url or '')}"

    def lost_reason(self) -> str:
        return "the HTTP connection ended"

    def transport(self) -> AbstractAsyncContextManager[TransportStreams]:
        return self._connect()

    def key_sessions(self) -> KeySessions | None:
        return KeySessions(self.name, self._key_client) if self._key_http is not None else None

    @asynccontextmanager
    async def _key_client(self) -> AsyncIterator[Client]:
        """A 2025-era session of the key whose request this is (the bearer is chosen per request, `http_auth`)."""
        assert self.settings.url is not None and self._key_http is not None
        transport = streamable_http_client(self.settings.url, http_client=self._key_http)
        client = Client(transport, mode="legacy", cache=None, client_info=CLIENT_INFO, **self.relay.client_options())
        async with client:
            yield client

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[TransportStreams]:
        assert self.settings.url is not None
        # One pooled client per upstream connection: every caller's requests share its keep-alive connections; the
        # SDK's httpx2 client, and aiohttp's for the `tools/call` fast path (`fast_call.py`). Where each key's own
        # token goes through them, they keep no cookies (docs/oauth.md, "One connection, a bearer per request").
        per_key = self._per_key_tokens()
        fast = FastHttp(
            self.settings.url,
            remote_headers(self),
            connect_timeout=self.hub.connect_timeout,
            read_timeout=longest_quiet(self),
            credentials=self.credentials,
            keep_cookies=not per_key,
        )
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [on_upstream_request],  # the upstream's polling, passed on (polling.py)
            "response": [fast.seen_response],  # the session id, for the fast path
        }
        http = self._http_client(hooks, cookies=not per_key)
        keyed = self._http_client({"request": [on_upstream_request]}, cookies=False) if per_key else None
        try:
            async with http, streamable_http_client(self.settings.url, http_client=http) as streams:
                self._http, self._key_http = fast, keyed
                yield streams
        finally:
            self._http = self._key_http = None
            with anyio.CancelScope(shield=True):  # a cancelled close would leave their connections open
                if keyed is not None:
                    await keyed.aclose()
                await fast.aclose()

    def _http_client(self, hooks: dict[str, list[Callable[..., Any]]], *, cookies: bool = True) -> httpx2.AsyncClient:
        """The SDK transport's client; with `cookies=False` (the client each calling key's token goes through), one
        that keeps no cookie: one the upstream set for one key's request must not go with another key's."""
        client = httpx2.AsyncClient(
            headers=remote_headers(self), timeout=remote_timeout(self), event_hooks=hooks, auth=self.http_auth
        )
        return client if cookies else without_cookies(client)

    def _per_key_tokens(self) -> bool:
        return self.credentials is not None and self.credentials.per_key
