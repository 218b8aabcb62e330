"""Rendering gateway errors at the HTTP edge, once, in OpenAI's error envelope."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from toolpolicy.errors import GatewayError, InvalidRequest, NotFound
from toolpolicy.jsonbody import read_json_object

logger = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a request whose client closed the connection first: logged, never received."""


class UnknownRoute(NotFound):
    """No route of the gateway has this path."""

    code = "unknown_route"


class MethodNotAllowed(InvalidRequest):
    """A route of the gateway has this path, but not for this method."""

    status = 405
    code = "method_not_allowed"


def openai_envelope(error: GatewayError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": error.openai_type, "param": error.param, "code": error.code}}


def error_response(error: GatewayError) -> JSONResponse:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return JSONResponse(openai_envelope(error), status_code=error.status, headers=headers)


async def handle_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def handle_client_gone(request: Request, exc: Exception) -> Response:
    """The client closed its connection while its request body was still being read: nothing went wrong here, and
    nobody is left to answer (the response goes nowhere)."""
    logger.debug("the client left during %s %s before its request body was read", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(GatewayError("internal error; the gateway logged the details"))


async def json_object(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object of at most `limit` bytes, or an error that says what is wrong with it."""
    return await read_json_object(request, limit)
