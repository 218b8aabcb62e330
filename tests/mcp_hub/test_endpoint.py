"""`sdk_entry`: a request whose body the endpoint read goes past the SDK's body-size check only where that check
could not refuse it, and the SDK sees the very messages it would have seen through the check."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from mcp.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware
from starlette.types import Message, Receive, Scope, Send

from mcp_hub.endpoint import sdk_entry
from mcp_hub.request_headers import RequestHeaders
from toolpolicy.errors import PayloadTooLarge
from toolpolicy.jsonbody import read_body

LIMIT = 1024


def _manager(limit: int = LIMIT) -> StreamableHTTPSessionManager:
    return StreamableHTTPSessionManager(app=Server("t"), max_request_body_size=limit)


def _headers(content_length: str | None) -> RequestHeaders:
    raw = [(b"content-type", b"application/json")]
    if content_length is not None:
        raw.append((b"content-length", content_length.encode("latin-1")))
    return RequestHeaders(raw)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_body_read_within_the_sdks_limit_skips_its_check() -> None:
    manager = _manager()
    assert sdk_entry(manager, LIMIT, _headers("12")) == manager._handle_request
    assert sdk_entry(manager, LIMIT - 1, _headers(None)) == manager._handle_request


@pytest.mark.parametrize("declared", ["+12", " 12", "1_2", "\u00b9\u00b2", "12 ", ""])
def test_a_declared_length_not_in_plain_ascii_digits_keeps_the_check(declared: str) -> None:
    manager = _manager()
    assert sdk_entry(manager, LIMIT, _headers(declared)) == manager.handle_request


def test_an_sdk_limit_below_the_endpoints_keeps_the_check() -> None:
    manager = _manager(LIMIT - 1)
    assert sdk_entry(manager, LIMIT, _headers("12")) == manager.handle_request


def test_a_manager_without_the_sdks_check_in_front_is_entered_as_it_is() -> None:
    manager = _manager()
    manager.asgi_app = manager._handle_request
    assert sdk_entry(manager, LIMIT, _headers("12")) == manager.handle_request


class _Recorder:
    """An ASGI app that reads every message its `receive` gives until the client is gone."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] == "http.disconnect":
                return


async def _unused_send(message: Message) -> None:
    raise AssertionError(f"nothing is sent: {message}")


class _Stream:
    def __init__(self, chunks: list[bytes], content_length: str | None) -> None:
        self.headers = _headers(content_length)
        self.chunks = chunks

    async def stream(self) -> Any:
        for chunk in self.chunks:
            yield chunk


async def _enter(app: Any, body: bytes, content_length: str | None) -> None:
    """Enter `app` (the check, or what is past it) with a body the endpoint read, replayed as the endpoint does."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:  # the endpoint's `_checked_body`, over a client that then goes away
        return pending.pop() if pending else {"type": "http.disconnect"}

    raw = [(b"content-type", b"application/json")]
    if content_length is not None:
        raw.append((b"content-length", content_length.encode("latin-1")))
    await app({"type": "http", "method": "POST", "headers": raw}, replay, _unused_send)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=400), max_size=6),
    declared=st.one_of(st.none(), st.integers(min_value=0, max_value=2 * LIMIT).map(str), st.text(max_size=6)),
    sdk_limit=st.integers(min_value=1, max_value=2 * LIMIT),
)
@pytest.mark.anyio
async def test_past_the_check_the_sdk_sees_what_it_would_see_through_it(
    chunks: list[bytes], declared: str | None, sdk_limit: int
) -> None:
    if declared is not None and not declared.isascii():
        declared = None  # a header value is bytes: latin-1 at most, and the checks look at ASCII digits
    try:
        body = await read_body(_Stream(chunks, declared), LIMIT)
    except PayloadTooLarge:
        return  # the endpoint answers 413 itself: the SDK never sees it
    through, past = _Recorder(), _Recorder()
    manager = _manager(sdk_limit)
    manager.asgi_app = RequestBodyLimitMiddleware(through, sdk_limit)
    entry = sdk_entry(manager, LIMIT, _headers(declared))
    if entry == manager.handle_request:
        return  # the check stays in front
    assert entry is through
    await _enter(manager.asgi_app, body, declared)  # would answer 413 through `_unused_send` if it refused
    await _enter(past, body, declared)
    assert through.messages == past.messages
    assert through.messages[0] == {"type": "http.request", "body": body, "more_body": False}
