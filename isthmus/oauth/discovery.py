"""Discovery documents: RFC 9728 protected resource metadata and RFC 8414 authorization server metadata."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from toolpolicy.oauth.core import OAuthCore

CORS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"}
"""Browser-based clients read discovery documents cross-origin."""


def discovery_routes(core: OAuthCore) -> list[Route]:
    async def protected_resource(request: Request) -> Response:
        suffix = request.path_params.get("suffix", "")
        if suffix not in ("", "mcp") and not suffix.startswith("mcp/"):
            return JSONResponse({"error": "not_found", "error_description": "no such protected resource"}, 404)
        resource_suffix = suffix.removeprefix("mcp")
        return JSONResponse(core.protected_resource_metadata(resource_suffix), headers=CORS)

    async def authorization_server(request: Request) -> Response:
        return JSONResponse(core.authorization_server_metadata(), headers=CORS)

    return [
        Route("/.well-known/oauth-protected-resource", protected_resource, methods=["GET"]),
        Route("/.well-known/oauth-protected-resource/{suffix:path}", protected_resource, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", authorization_server, methods=["GET"]),
        Route("/.well-known/openid-configuration", authorization_server, methods=["GET"]),
    ]
