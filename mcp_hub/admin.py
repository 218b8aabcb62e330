"""The hub's admin routes, behind the admin key.

- `GET /admin/mcp/servers`: every configured upstream, its health, what it lists and its tool overrides;
  `unsupported` lists the optional methods the server lacks or fails (served as empty), each with its error;
  `skipped_tools` the tools left out because their definitions are invalid, each with why;
- `POST /admin/mcp/servers/<name>/disable` and `/enable`: disconnect a configured server and keep it down (its tools
  leave every listing), or connect it again; held by this process until it restarts;
- `GET /admin/mcp/bundles`: every bundle, its patterns and overrides, and the tools it serves now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_hub.bundles import Bundle
from mcp_hub.catalog import Catalog
from mcp_hub.rest import error_response
from mcp_hub.upstreams import Upstream
from toolpolicy.credentials import require_admin as check_admin
from toolpolicy.errors import GatewayError
from toolpolicy.runtime import Governance


async def require_admin(governance: Governance, request: Request) -> None:
    """Accept only the configured admin key, exactly as the rest of `/admin` does."""
    await check_admin(governance.settings, governance.keys, request.headers)


def describe_upstream(upstream: Upstream) -> dict[str, Any]:
    snapshot = upstream.snapshot
    return {
        "name": upstream.name,
        "transport": upstream.kind,
        "target": upstream.describe(),
        "enabled": upstream.settings.enabled and upstream.health.state != "disabled",
        **upstream.health.as_dict(),
        "timeout": upstream.settings.timeout,
        "tools": [tool.name for tool in snapshot.tools] if snapshot else [],
        "overrides": {tool: override.as_config() for tool, override in upstream.settings.overrides.items()},
        "prompts": [prompt.name for prompt in snapshot.prompts] if snapshot else [],
        "resources": len(snapshot.resources) if snapshot else 0,
        "resource_templates": len(snapshot.templates) if snapshot else 0,
        "unsupported": upstream.unsupported.as_list(),
        "skipped_tools": [{"name": name, "error": error} for name, error in sorted(upstream.screen.rejected.items())],
    }


def admin_routes(
    governance: Governance,
    upstreams: Mapping[str, Upstream],
    bundles: Mapping[str, Bundle],
    catalog: Catalog,
    set_enabled: Callable[[str, bool], None],
) -> list[Route]:
    async def servers(request: Request) -> Response:
        try:
            await require_admin(governance, request)
        except GatewayError as exc:
            return error_response(exc)
        return JSONResponse({"data": [describe_upstream(upstreams[name]) for name in sorted(upstreams)]})

    async def bundle_list(request: Request) -> Response:
        try:
            await require_admin(governance, request)
        except GatewayError as exc:
            return error_response(exc)
        return JSONResponse({"data": [bundles[name].describe(catalog) for name in sorted(bundles)]})

    def toggle(enabled: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            name = request.path_params["name"]
            try:
                await require_admin(governance, request)
                set_enabled(name, enabled)
            except GatewayError as exc:
                return error_response(exc)
            return JSONResponse(describe_upstream(upstreams[name]))

        return endpoint

    return [
        Route("/admin/mcp/servers", servers, methods=["GET"]),
        Route("/admin/mcp/servers/{name}/enable", toggle(True), methods=["POST"]),
        Route("/admin/mcp/servers/{name}/disable", toggle(False), methods=["POST"]),
        Route("/admin/mcp/bundles", bundle_list, methods=["GET"]),
    ]
