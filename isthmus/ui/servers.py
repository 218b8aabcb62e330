"""MCP servers: each upstream's state, last error, tools and Code Mode, as the hub's admin API describes them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isthmus.ui.guard import SignedIn

if TYPE_CHECKING:
    from isthmus.ui.app import Dashboard


def describe_servers(components: list[Any]) -> list[dict[str, Any]] | None:
    """Every upstream of the MCP hub (None when the hub is not served)."""
    from mcp_hub import McpHub
    from mcp_hub.admin import describe_upstream

    hub = next((part for part in components if isinstance(part, McpHub)), None)
    if hub is None:
        return None
    servers = []
    for name in sorted(hub.upstreams):
        upstream = hub.upstreams[name]
        servers.append({**describe_upstream(upstream), "code_mode": upstream.settings.code_mode})
    return servers


def routes(ui: Dashboard) -> list[Route]:
    async def servers(request: Request, who: SignedIn) -> Response:
        return ui.render(request, who, "servers.html", servers=describe_servers(request.app.state.components))

    return [Route("/mcp", ui.page(servers), methods=["GET"])]
