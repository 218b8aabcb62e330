"""Requests no route takes: a 404 (no such path) or 405 (no such method there) that names the method and the path,
in the error envelope of the API the path belongs to, logged at info and counted (`isthmus_unknown_routes`).

Starlette's router raises `HTTPException(404)` or `HTTPException(405)` for these, inside `/admin` too; `/mcp` and
`/mcp/{server}` take every method and path themselves and answer in JSON-RPC, so nothing here reaches them.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from isthmus.errors import MethodNotAllowed, UnknownRoute, error_response
from toolpolicy.errors import GatewayError, InvalidRequest
from toolpolicy.runtime import Governance

logger = logging.getLogger(__name__)

SHOWN_PATH = 256
"""Characters of the path an answer or log line repeats at most (a path is whatever the client sent)."""
SHOWN_METHOD = 16
ANTHROPIC_PATHS = ("/v1/messages",)
"""Paths answered in Anthropic's error envelope, as their routes answer every other error."""


def _shown(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _anthropic(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in ANTHROPIC_PATHS)


def _allow(exc: HTTPException) -> str:
    """The route's methods in a stable order (Starlette keeps them in a set)."""
    methods = (exc.headers or {}).get("Allow", "")
    return ", ".join(sorted(method.strip() for method in methods.split(",") if method.strip()))


def routing_error(request: Request, exc: HTTPException) -> GatewayError:
    method, path = _shown(request.method, SHOWN_METHOD), _shown(request.url.path, SHOWN_PATH)
    if exc.status_code == 404:
        return UnknownRoute(f"unknown route: {method} {path}")
    allow = _allow(exc)
    return MethodNotAllowed(f"method {method} is not allowed on {path}" + (f"; allowed: {allow}" if allow else ""))


async def http_error(request: Request, exc: Exception) -> Response:
    """Render Starlette's `HTTPException`: 404 and 405 as routing errors (logged, counted), others as they say."""
    assert isinstance(exc, HTTPException)
    if exc.status_code not in (404, 405):
        response = error_response(InvalidRequest(exc.detail or "error"))
        response.status_code = exc.status_code
        return response
    error = routing_error(request, exc)
    governance: Governance = request.app.state.governance
    governance.metrics.unknown_route(request.method, request.url.path, exc.status_code)
    logger.info("%s %r: %s", exc.status_code, f"{request.method} {request.url.path}"[:SHOWN_PATH], error.code)
    headers = {"Allow": _allow(exc)} if exc.status_code == 405 else {}
    if _anthropic(request.url.path):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        body = {"type": "error", "error": {"type": kind, "message": error.message}}
        return JSONResponse(body, status_code=error.status, headers=headers)
    response = error_response(error)
    response.headers.update(headers)
    return response
