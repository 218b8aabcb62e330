"""Upstream MCP servers by transport, registered by short name, and the supervisor that keeps them connected."""

from __future__ import annotations

from mcp_hub.upstreams.base import Upstream
from mcp_hub.upstreams.http import HttpUpstream
from mcp_hub.upstreams.sse import SseUpstream
from mcp_hub.upstreams.stdio import StdioUpstream
from toolpolicy.settings import McpHubSettings, McpServerSettings

UPSTREAMS: dict[str, type[Upstream]] = {
    "stdio": StdioUpstream,
    "streamable-http": HttpUpstream,
    "sse": SseUpstream,
}


def build_upstream(name: str, settings: McpServerSettings, hub: McpHubSettings) -> Upstream:
    return UPSTREAMS[settings.remote_transport or "stdio"](name, settings, hub)


__all__ = ["UPSTREAMS", "Upstream", "build_upstream"]
