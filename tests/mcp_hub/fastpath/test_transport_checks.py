"""The SDK transport's header checks on the headers read once give the SDK's own verdicts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from mcp.server.streamable_http import StreamableHTTPServerTransport, check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request

from mcp_hub.fastpath import transport_checks
from mcp_hub.fastpath.transport_checks import accepts, json_content, security_refuses
from mcp_hub.request_headers import RequestHeaders

pytestmark = pytest.mark.anyio

SECURITIES = [
    TransportSecurityMiddleware(None),
    TransportSecurityMiddleware(
        TransportSecuritySettings(allowed_hosts=["hub:8080", "127.0.0.1:*"], allowed_origins=["https://app:*"])
    ),
]
accept_values = st.sampled_from(
    [
        "",
        "application/json",
        "text/event-stream",
        "application/json, text/event-stream",
        "*/*",
        "text/*;q=0.5",
        "Application/JSON ; q=1",
        "application/*,text/html",
    ]
)
content_types = st.sampled_from(
    [
        "",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "APPLICATION/JSON",
        "application/json,text/plain",
    ]
)
hosts = st.sampled_from(["", "hub:8080", "hub:9090", "127.0.0.1:1234", "evil"])
origins = st.sampled_from(["", "https://app:443", "https://evil", "null"])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def raw_headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in values.items() if value]


@settings(max_examples=150, deadline=None, database=None)
@given(accept=accept_values, content_type=content_types, host=hosts, origin=origins)
async def test_each_verdict_is_the_sdks_on_the_same_request(
    accept: str, content_type: str, host: str, origin: str
) -> None:
    raw = raw_headers(accept=accept, content_type=content_type, host=host, origin=origin)
    request = Request({"type": "http", "method": "POST", "headers": raw})
    headers = RequestHeaders(raw)
    transport: Any = StreamableHTTPServerTransport(mcp_session_id=None)
    for security in SECURITIES:
        refused = await security.validate_request(request, is_post=True) is not None
        assert security_refuses(security, headers) == refused
    assert accepts(headers) == check_accept_headers(request)
    assert json_content(transport, headers) == transport._check_content_type(request)


def test_the_verdict_memory_starts_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_checks, "KEPT", 2)
    monkeypatch.setattr(transport_checks, "_accepts", {})
    for accept in ("application/json", "text/event-stream", "*/*"):
        accepts(RequestHeaders([(b"accept", accept.encode())]))
    assert list(transport_checks._accepts) == ["*/*"]
