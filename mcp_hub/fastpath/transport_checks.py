"""The SDK transport's header checks before dispatch, made on the headers read once (`request_headers.py`).

Each is the SDK's own check, on the same header values: `TransportSecurityMiddleware.validate_request(..., is_post=
True)` by its three validators in its order, and `check_accept_headers` and the transport's `_check_content_type`
by the SDK's functions themselves, run once per distinct header value (a client sends the same `Accept` and
`Content-Type` on every request) on a request holding just that header. Nothing here answers a request: a refusal
leaves it to the SDK, which refuses it in its own words.
"""

from __future__ import annotations

from typing import Final

from mcp.server.streamable_http import StreamableHTTPServerTransport, check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware
from starlette.requests import Request

from mcp_hub.request_headers import RequestHeaders

KEPT: Final = 256
"""Distinct header values whose verdicts are kept; beyond that the memory starts over (clients choose the values)."""

_accepts: dict[str, tuple[bool, bool]] = {}
_json_content: dict[str, bool] = {}


def security_refuses(security: TransportSecurityMiddleware, headers: RequestHeaders) -> bool:
    """Whether `security.validate_request(request, is_post=True)` answers the POST with a refusal."""
    if not security._validate_content_type(headers.get("content-type")):
        return True
    if not security.settings.enable_dns_rebinding_protection:
        return False
    return not security._validate_host(headers.get("host")) or not security._validate_origin(headers.get("origin"))


def accepts(headers: RequestHeaders) -> tuple[bool, bool]:
    """`check_accept_headers(request)`: whether `Accept` names JSON, and event streams."""
    accept = headers.get("accept", "")
    verdict = _accepts.get(accept)
    if verdict is None:
        if len(_accepts) >= KEPT:
            _accepts.clear()
        verdict = _accepts[accept] = check_accept_headers(_holding("accept", accept))
    return verdict


def json_content(transport: StreamableHTTPServerTransport, headers: RequestHeaders) -> bool:
    """`transport._check_content_type(request)`: whether `Content-Type` is JSON."""
    content_type = headers.get("content-type", "")
    verdict = _json_content.get(content_type)
    if verdict is None:
        if len(_json_content) >= KEPT:
            _json_content.clear()
        verdict = _json_content[content_type] = transport._check_content_type(_holding("content-type", content_type))
    return verdict


def _holding(name: str, value: str) -> Request:
    """A request with `name: value` as its only header (the only one the SDK's check reads); none if it is empty,
    which the check reads as it reads an absent one."""
    raw = [(name.encode("latin-1"), value.encode("latin-1"))] if value else []
    return Request({"type": "http", "method": "POST", "headers": raw})
