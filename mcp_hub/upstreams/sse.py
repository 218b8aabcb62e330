"""Upstreams over the legacy HTTP+SSE transport (2024-11-05; `transport: sse`)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import cast

from mcp.client._transport import TransportStreams
from mcp.client.sse import sse_client

from mcp_hub.upstreams.base import Upstream
from mcp_hub.upstreams.http import longest_quiet, redacted, remote_headers


class SseUpstream(Upstream):
    kind = "sse"

    def describe(self) -> str:
        return f"URL {redacted(self.settings.url or '')}"

    def lost_reason(self) -> str:
        return "the SSE stream ended"

    def transport(self) -> AbstractAsyncContextManager[TransportStreams]:
        assert self.settings.url is not None
        connect = sse_client(
            self.settings.url,
            headers=remote_headers(self),
            timeout=self.hub.connect_timeout,
            sse_read_timeout=max(300.0, longest_quiet(self)),
            auth=self.http_auth,
        )
        return cast(AbstractAsyncContextManager[TransportStreams], connect)
