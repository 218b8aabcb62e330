"""`McpEndpoint`'s parts: `sdk_entry` (a request whose body the endpoint read goes past the SDK's body-size check
only where that check could not refuse it, and the SDK sees the very messages it would have seen through the check),
and the callers it keeps made (one equal to a new one, made anew whenever anything it holds would differ)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import given, settings, strategies as st
from mcp.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive, Scope, Send

import mcp_hub.endpoint as endpoint_module
from mcp_hub.access import NARROW_HEADER, Caller, narrowing
from mcp_hub.bundles import Bundle
from mcp_hub.endpoint import McpEndpoint, sdk_entry
from mcp_hub.request_headers import RequestHeaders
from toolpolicy.errors import PayloadTooLarge
from toolpolicy.jsonbody import read_body, receive_body
from toolpolicy.settings import McpBundleSettings
from toolpolicy.types import Principal

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


def _endpoint(code_mode_servers: frozenset[str] = frozenset()) -> McpEndpoint:
    return McpEndpoint(cast(Any, None), ["fx"], lambda: None, code_mode_servers, max_body_bytes=LIMIT)


def _narrowed(value: str | None) -> RequestHeaders:
    return RequestHeaders([] if value is None else [(NARROW_HEADER.encode(), value.encode())])


def test_a_caller_is_the_one_made_before_for_the_same_principal_key_endpoint_and_narrowing() -> None:
    endpoint, principal = _endpoint(), Principal(key_id="k1", key_name="one")
    first = endpoint._caller(principal, "isk-1", "fx", _narrowed("fx__*"), None)
    again = endpoint._caller(principal, "isk-1", "fx", _narrowed("fx__*"), None)
    assert again is first
    assert first == Caller(principal, "isk-1", "fx", narrowing(_narrowed("fx__*")), frozenset(), None)


def test_anything_else_gets_a_caller_of_its_own() -> None:
    endpoint, principal = _endpoint(), Principal(key_id="k1", key_name="one")
    bundle = Bundle("support", McpBundleSettings(tools=["fx__add"]))
    first = endpoint._caller(principal, "isk-1", "fx", _narrowed(None), None)
    others = {
        "principal reloaded": (Principal(key_id="k1", key_name="one"), "isk-1", "fx", _narrowed(None), None),
        "another key": (Principal(key_id="k2", key_name="two"), "isk-2", "fx", _narrowed(None), None),
        "another secret": (principal, "isk-rotated", "fx", _narrowed(None), None),
        "another endpoint": (principal, "isk-1", None, _narrowed(None), None),
        "a bundle": (principal, "isk-1", None, _narrowed(None), bundle),
        "narrowed": (principal, "isk-1", "fx", _narrowed("fx__add"), None),
        "narrowed to nothing": (principal, "isk-1", "fx", _narrowed(""), None),
    }
    for why, (who, secret, server, headers, chosen) in others.items():
        made = endpoint._caller(who, secret, server, headers, chosen)
        expected = Caller(who, secret, server, narrowing(headers), frozenset(), chosen)
        assert made is not first and made == expected, why
        assert made.principal is who and made.bundle is chosen, why
    assert endpoint._caller(principal, "isk-1", "fx", _narrowed(None), None) is not first  # replaced meanwhile


def test_new_code_mode_servers_get_a_caller_of_their_own() -> None:
    endpoint, principal = _endpoint(), Principal(key_id="k1", key_name="one")
    first = endpoint._caller(principal, "isk-1", "fx", _narrowed(None), None)
    endpoint.code_mode_servers = frozenset({"fx"})
    made = endpoint._caller(principal, "isk-1", "fx", _narrowed(None), None)
    assert made is not first and made.code_mode_servers == frozenset({"fx"})


def test_the_callers_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint_module, "_CALLERS_KEPT", 4)
    endpoint = _endpoint()
    for n in range(10):
        endpoint._caller(Principal(key_id=f"k{n}", key_name="n"), f"isk-{n}", "fx", _narrowed(None), None)
        assert len(endpoint._callers) <= 4


async def _read_all(stream: Any) -> tuple[list[bytes], bool]:
    """Every chunk `stream` yields, empty ones left out, and whether it ended by the client going away."""
    read: list[bytes] = []
    try:
        async for chunk in stream:
            if chunk:
                read.append(chunk)  # noqa: PERF401 (one at a time: what was read before a disconnect counts)
    except ClientDisconnect:
        return read, True
    return read, False


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=50), max_size=5),
    ending=st.sampled_from(["last", "disconnect", "other-then-last"]),
)
@pytest.mark.anyio
async def test_the_body_is_received_as_starlettes_request_stream_reads_it(chunks: list[bytes], ending: str) -> None:
    """`receive_body` (what the endpoint reads a body with) against Starlette's `Request.stream()`, over the same
    messages: the same bytes, the same end."""
    messages: list[Message] = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    if ending == "disconnect":
        messages.append({"type": "http.disconnect"})
    else:
        if ending == "other-then-last":
            messages.append({"type": "http.other"})
        messages.append({"type": "http.request", "body": b"end", "more_body": False})

    def receiver() -> Receive:
        pending = list(messages)

        async def receive() -> Message:
            return pending.pop(0)

        return receive

    scope: Scope = {"type": "http", "method": "POST", "headers": []}
    expected = await _read_all(Request(scope, receiver()).stream())
    read, disconnected = expected
    if disconnected:
        with pytest.raises(ClientDisconnect):
            await receive_body(receiver(), {}, 10_000, disconnected=ClientDisconnect)
    else:
        assert await receive_body(receiver(), {}, 10_000, disconnected=ClientDisconnect) == b"".join(read)
