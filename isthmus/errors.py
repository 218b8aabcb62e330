"""Rendering gateway errors at the HTTP edge, once, in OpenAI's error envelope."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from toolpolicy.errors import GatewayError, InvalidRequest

logger = logging.getLogger(__name__)


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


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(GatewayError("internal error; the gateway logged the details"))


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or an InvalidRequest that says what is wrong with it."""
    body = await request.body()
    if not body:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise InvalidRequest(f"the request body is not valid JSON: {exc.msg} at {where}") from None
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not UTF-8 text") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"the request body must be a JSON object, not {type(data).__name__}")
    return data
