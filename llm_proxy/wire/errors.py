"""Errors as each client API expects them: OpenAI's envelope on `/v1/*`, Anthropic's on `/v1/messages`.

Rendering happens once per edge, from the error's own attributes; a provider's status reaches the client only for
errors that are the request's fault (400, 413, 422) or that the client may retry (429, 5xx).
"""

from __future__ import annotations

from typing import Any

from llm_proxy.errors import UpstreamStatusError
from toolpolicy.errors import GatewayError, GuardrailBlocked

_OPENAI_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def status_of(error: GatewayError) -> int:
    return error.http_status if isinstance(error, UpstreamStatusError) else error.status


def openai_type(error: GatewayError) -> str:
    if isinstance(error, UpstreamStatusError) and not error.key_rejected:
        return _OPENAI_TYPES.get(error.upstream_status, "api_error")
    return error.openai_type


def openai_error(error: GatewayError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": openai_type(error), "param": error.param, "code": error.code}}


def anthropic_error(error: GatewayError) -> dict[str, Any]:
    kind = _ANTHROPIC_TYPES.get(status_of(error), "api_error")
    body: dict[str, Any] = {"type": kind, "message": error.message}
    if isinstance(error, GuardrailBlocked):  # Anthropic's envelope has no code; this one the client can act on
        body["code"] = error.code
    return {"type": "error", "error": body}


def error_headers(error: GatewayError) -> dict[str, str]:
    if error.retry_after is None:
        return {}
    return {"retry-after": str(max(1, round(error.retry_after)))}
