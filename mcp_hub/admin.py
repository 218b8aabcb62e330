"""`GET /admin/mcp/servers`: every configured upstream, its health and what it lists, behind the admin key."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_hub.access import presented_key
from mcp_hub.rest import error_response
from mcp_hub.upstreams import Upstream
from toolpolicy.errors import AuthenticationError, GatewayError, PermissionDenied
from toolpolicy.runtime import Governance


async def require_admin(governance: Governance, request: Request) -> None:
    """Accept only the configured admin key; a virtual key gets 403, anything else 401 (as the rest of /admin)."""
    token = presented_key(request.headers)
    admin_key = governance.settings.admin_key
    expected = admin_key.get_secret_value() if admin_key is not None else ""
    if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return
    if token:
        try:
            await governance.keys.resolve(token)
        except AuthenticationError:
            pass
        else:
            raise PermissionDenied("a virtual key cannot use the admin API; use the admin key")
    if not expected:
        raise AuthenticationError("the admin API is disabled: set admin_key in the configuration")
    raise AuthenticationError("missing or wrong admin key: send 'Authorization: Bearer <admin_key>'")


def describe_upstream(upstream: Upstream) -> dict[str, Any]:
    snapshot = upstream.snapshot
    return {
        "name": upstream.name,
        "transport": upstream.kind,
        "target": upstream.describe(),
        "enabled": upstream.settings.enabled,
        **upstream.health.as_dict(),
        "timeout": upstream.settings.timeout,
        "tools": [tool.name for tool in snapshot.tools] if snapshot else [],
        "prompts": [prompt.name for prompt in snapshot.prompts] if snapshot else [],
        "resources": len(snapshot.resources) if snapshot else 0,
        "resource_templates": len(snapshot.templates) if snapshot else 0,
    }


def admin_routes(governance: Governance, upstreams: Mapping[str, Upstream]) -> list[Route]:
    async def servers(request: Request) -> Response:
        try:
            await require_admin(governance, request)
        except GatewayError as exc:
            return error_response(exc)
        return JSONResponse({"data": [describe_upstream(upstreams[name]) for name in sorted(upstreams)]})

    return [Route("/admin/mcp/servers", servers, methods=["GET"])]
