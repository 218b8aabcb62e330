"""MCP servers: each upstream's state, last error, tools and Code Mode, as the hub's admin API describes them, and
enabling or disabling one at run time (`McpHub.set_enabled`, as `POST /admin/mcp/servers/<name>/disable` does)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from isthmus.ui.guard import Page, SignedIn
from toolpolicy.errors import NotFound

if TYPE_CHECKING:
    from isthmus.ui.app import Dashboard
    from mcp_hub import McpHub


def _hub(components: list[Any]) -> McpHub | None:
    from mcp_hub import McpHub

    return next((part for part in components if isinstance(part, McpHub)), None)


def describe_servers(components: list[Any]) -> list[dict[str, Any]] | None:
    """Every upstream of the MCP hub (None when the hub is not served)."""
    from mcp_hub.admin import describe_upstream

    hub = _hub(components)
    if hub is None:
        return None
    servers = []
    for name in sorted(hub.upstreams):
        upstream = hub.upstreams[name]
        settings = upstream.settings
        servers.append(
            {**describe_upstream(upstream), "code_mode": settings.code_mode, "config_disabled": not settings.enabled}
        )
    return servers


def routes(ui: Dashboard) -> list[Route]:
    async def servers(request: Request, who: SignedIn) -> Response:
        return ui.render(request, who, "servers.html", servers=describe_servers(request.app.state.components))

    def toggle(enabled: bool) -> Page:
        async def set_enabled(request: Request, who: SignedIn) -> Response:
            hub = _hub(request.app.state.components)
            if hub is None:
                raise NotFound("the MCP hub is not served by this gateway", param="server")
            hub.set_enabled(request.path_params["name"], enabled)  # the admin API's own operation
            return RedirectResponse("/ui/mcp", status_code=303)

        set_enabled.__name__ = "enable_server" if enabled else "disable_server"
        return set_enabled

    return [
        Route("/mcp", ui.page(servers), methods=["GET"]),
        Route("/mcp/{name}/enable", ui.page(toggle(True)), methods=["POST"]),
        Route("/mcp/{name}/disable", ui.page(toggle(False)), methods=["POST"]),
    ]
