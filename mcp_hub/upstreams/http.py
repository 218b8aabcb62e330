"""Upstreams over Streamable HTTP (`transport: streamable-http`, the default for a `url`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx2
from mcp.client._transport import TransportStreams
from mcp.client.streamable_http import streamable_http_client

from mcp_hub.polling import on_upstream_request
from mcp_hub.relay import elicitation_timeout
from mcp_hub.upstreams.base import Upstream

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
    return {name: value.get_secret_value() for name, value in upstream.settings.headers.items()}


def longest_quiet(upstream: Upstream) -> float:
    """Seconds a call's stream may stay quiet: its timeout, or a client's user answering an elicitation."""
    return max(upstream.settings.timeout, elicitation_timeout(upstream.settings, upstream.hub)) + READ_SLACK


def remote_timeout(upstream: Upstream) -> httpx2.Timeout:
    return httpx2.Timeout(upstream.hub.connect_timeout, read=longest_quiet(upstream))


class HttpUpstream(Upstream):
    kind = "streamable-http"

    def describe(self) -> str:
        return f"URL {redacted(self.settings.url or '')}"

    def lost_reason(self) -> str:
        return "the HTTP connection ended"

    def transport(self) -> AbstractAsyncContextManager[TransportStreams]:
        return self._connect()

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[TransportStreams]:
        assert self.settings.url is not None
        # One pooled client per upstream connection: every caller's requests share its keep-alive connections.
        hooks = {"request": [on_upstream_request]}  # the upstream's polling, passed on (polling.py)
        http = httpx2.AsyncClient(headers=remote_headers(self), timeout=remote_timeout(self), event_hooks=hooks)
        async with http, streamable_http_client(self.settings.url, http_client=http) as streams:
            yield streams
