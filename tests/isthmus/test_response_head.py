"""`CheckedHeadCycle` writes what uvicorn's `RequestResponseCycle` writes, raises what it raises and leaves the cycle
in the state it leaves, for every kind of send: each case runs through both and the two records are compared."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HEADER_VALUE_RE, RequestResponseCycle

import llm_proxy.streaming
import mcp_hub.fastpath.exchange
from isthmus.http_guard import guarded_protocol
from isthmus.response_head import BODY_FOLLOWS, CheckedHeadCycle
from tests.isthmus.test_slow_clients import read_until_closed
from toolpolicy.server_settings import ServerSettings

pytestmark = pytest.mark.anyio

DEFAULTS = [(b"server", b"uvicorn"), (b"date", b"Mon, 07 Dec 2026 05:00:00 GMT")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


class Flow:
    write_paused = False


def start(*headers: tuple[Any, ...], status: Any = 200) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def body(data: Any = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


JSON = (b"content-type", b"application/json")
CASES: dict[str, tuple[str, bool, list[dict[str, Any]]]] = {
    "an answer with its length": (
        "POST",
        True,
        [start((b"x-request-id", b"r1"), (b"content-length", b"2"), JSON), body(b"{}")],
    ),
    "names in capitals": ("POST", True, [start((b"X-Request-Id", b"r1"), (b"Content-Length", b"2")), body(b"{}")]),
    "no length: chunked": ("POST", True, [start(JSON), body(b"data: 1\n\n", True), body(b"", True), body()]),
    "no length, a last chunk with data": ("POST", True, [start(JSON), body(b"a", True), body(b"bc")]),
    "chunked named": ("POST", True, [start((b"transfer-encoding", b"Chunked")), body(b"abc", True), body()]),
    "length then chunked": (
        "POST",
        True,
        [start((b"content-length", b"3"), (b"transfer-encoding", b"chunked")), body(b"abc")],
    ),
    "connection close named": ("POST", True, [start((b"connection", b"keep-alive, Close")), body(b"x")]),
    "connection kept named": ("POST", True, [start((b"connection", b"keep-alive"), (b"content-length", b"0")), body()]),
    "connection kept named, chunked": ("POST", True, [start((b"connection", b"keep-alive")), body(b"x", True), body()]),
    "connection kept named, not kept alive": (
        "POST",
        False,
        [start((b"connection", b"Keep-Alive"), (b"content-length", b"1")), body(b"x")],
    ),
    "two connections named, the second close": (
        "POST",
        True,
        [start((b"connection", b"keep-alive"), (b"Connection", b" CLOSE "), (b"content-length", b"1")), body(b"x")],
    ),
    "connection close among tokens": ("POST", True, [start((b"connection", b"upgrade,close")), body(b"x")]),
    "connection closer is not close": (
        "POST",
        True,
        [start((b"connection", b"closer"), (b"content-length", b"0")), body()],
    ),
    "not kept alive": ("POST", False, [start((b"content-length", b"1")), body(b"x")]),
    "a HEAD request": ("HEAD", True, [start((b"content-length", b"5")), body(b"")]),
    "204 without length": ("POST", True, [start(status=204), body()]),
    "a value with a tab": ("POST", True, [start((b"x-a", b"one\ttwo"), (b"content-length", b"0")), body()]),
    "a bad name": ("POST", True, [start((b"x a", b"1"), (b"content-length", b"0")), body()]),
    "a bad value": ("POST", True, [start((b"x-a", b"1\r\nx-b: 2"), (b"content-length", b"0")), body()]),
    "a bad value before a bad name": ("POST", True, [start((b"x-a", b"\x00"), (b"x(b", b"1"))]),
    "a bad length": ("POST", True, [start((b"content-length", b"two")), body(b"xx")]),
    "a text value": ("POST", True, [start((b"x-a", "text"), (b"content-length", b"0")), body()]),
    "a pair of three": ("POST", True, [start((b"x-a", b"1", b"2"))]),
    "an unknown status": ("POST", True, [start((b"content-length", b"0"), status=999), body()]),
    "a body too long": ("POST", True, [start((b"content-length", b"1")), body(b"xx")]),
    "a body too short": ("POST", True, [start((b"content-length", b"3")), body(b"xx")]),
    "a body in parts": ("POST", True, [start((b"content-length", b"3")), body(b"x", True), body(b"yz")]),
    "a body after the end": ("POST", True, [start((b"content-length", b"1")), body(b"x"), body(b"y")]),
    "a body first": ("POST", True, [body(b"x")]),
    "a start twice": ("POST", True, [start((b"content-length", b"0")), start()]),
    "a % in a name and in a value": ("POST", True, [start((b"x-%s%", b"%d %s"), (b"content-length", b"0")), body()]),
    "two lengths: the first counts": (
        "POST",
        True,
        [start((b"Content-Length", b"1"), (b"content-length", b"5")), body(b"x")],
    ),
    "a memoryview value": ("POST", True, [start((b"x-a", memoryview(b"1")), (b"content-length", b"0")), body()]),
    "a bytearray body": ("POST", True, [start((b"content-length", b"2")), body(bytearray(b"ab"))]),
}


async def run(cls: type[RequestResponseCycle], method: str, keep_alive: bool, messages: list[dict[str, Any]]) -> Any:
    return await run_on(Transport(), cls, method, keep_alive, messages)


async def run_on(
    transport: Transport,
    cls: type[RequestResponseCycle],
    method: str,
    keep_alive: bool,
    messages: list[dict[str, Any]],
) -> Any:
    ended: list[bool] = []
    cycle = cls(
        scope={"type": "http", "method": method},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=Flow(),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=DEFAULTS,
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: ended.append(True),
    )
    outcome: list[Any] = []
    for message in messages:
        try:
            await cycle.send(message)  # type: ignore[arg-type]
            outcome.append("sent")
        except Exception as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")
    state = {
        name: getattr(cycle, name)
        for name in ("response_started", "response_complete", "chunked_encoding", "expected_content_length")
    }
    state |= {"keep_alive": cycle.keep_alive, "event": cycle.message_event.is_set()}
    return b"".join(transport.written), outcome, state, transport.closed, ended


@pytest.mark.parametrize("case", list(CASES))
async def test_each_send_writes_raises_and_leaves_what_uvicorns_own_does(case: str) -> None:
    method, keep_alive, messages = CASES[case]
    expected = await run(RequestResponseCycle, method, keep_alive, messages)
    assert await run(CheckedHeadCycle, method, keep_alive, messages) == expected
    assert await run(CheckedHeadCycle, method, keep_alive, messages) == expected  # its names' plan known by now


def body_follows(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with each start saying that its body follows at once."""
    return [
        {**message, BODY_FOLLOWS: True} if message["type"] == "http.response.start" else message for message in messages
    ]


@pytest.mark.parametrize("case", list(CASES))
async def test_a_head_held_for_its_body_writes_raises_and_leaves_what_uvicorns_own_does(case: str) -> None:
    method, keep_alive, messages = CASES[case]
    expected = await run(RequestResponseCycle, method, keep_alive, messages)
    assert await run(CheckedHeadCycle, method, keep_alive, body_follows(messages)) == expected
    assert await run(RequestResponseCycle, method, keep_alive, body_follows(messages)) == expected  # uvicorn ignores it


@pytest.mark.parametrize(
    ("case", "writes"),
    [
        ("an answer with its length", 1),
        ("no length: chunked", 2),
        ("a body in parts", 2),
        ("a HEAD request", 1),
        ("connection kept named, chunked", 2),
        ("connection kept named, not kept alive", 1),
    ],
)
async def test_a_head_held_for_its_body_goes_out_in_the_same_write(case: str, writes: int) -> None:
    method, keep_alive, messages = CASES[case]
    transport = Transport()
    await run_on(transport, CheckedHeadCycle, method, keep_alive, body_follows(messages))
    assert len(transport.written) == writes
    assert b"\r\n\r\n" in transport.written[0]  # the head ends in the first write


def test_the_apps_spell_the_body_follows_key_as_the_server_reads_it() -> None:
    # An ASGI message key, spelled by each app that sets it (llm_proxy and mcp_hub import neither the other nor the
    # server), as "http.response.start" is.
    assert llm_proxy.streaming.BODY_FOLLOWS == mcp_hub.fastpath.exchange.BODY_FOLLOWS == BODY_FOLLOWS


def test_a_tab_joins_values_because_the_value_check_allows_it() -> None:
    assert HEADER_VALUE_RE.search(b"\t") is None


async def test_a_value_with_any_byte_in_it_is_written_or_refused_as_uvicorn_does() -> None:
    for byte in range(256):
        messages = [start((b"x-a", b"a" + bytes([byte]) + b"b"), (b"content-length", b"0")), body()]
        expected = await run(RequestResponseCycle, "POST", True, messages)
        assert await run(CheckedHeadCycle, "POST", True, messages) == expected, byte


REQUESTS = (
    b"POST /a HTTP/1.1\r\nHost: g\r\nX-Forwarded-For: 1.2.3.4\r\nContent-Length: 2\r\n\r\nhi"
    b"GET /a HTTP/1.1\r\nHost: g\r\n\r\n"
    b"HEAD /a HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n"
)


async def served(http: Any) -> tuple[bytes, list[Any]]:
    """What a server with protocol `http` answers to `REQUESTS` on one connection, its `date` blanked, and what the
    app saw: the client and the class of the cycle that sends."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["client"][0], type(getattr(send, "__self__", None)).__name__))
        text = b"%s %s" % (scope["method"].encode(), scope["client"][0].encode())
        headers = [(b"X-Request-Id", b"r1"), (b"content-length", b"%d" % len(text)), (b"content-type", b"text/x")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": text})

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", http=http)
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)  # as `uvicorn.Server.serve` sets it up before `startup`
    await server.startup()
    try:
        port = server.servers[0].sockets[0].getsockname()[1]

        def exchange() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(REQUESTS)
                return read_until_closed(sock)

        answer = await asyncio.to_thread(exchange)
    finally:
        await server.shutdown()
    return re.sub(rb"date: [^\r]*", b"date: -", answer), seen


async def test_the_gateways_protocol_sends_with_it_the_bytes_uvicorns_own_sends() -> None:
    guarded, seen = await served(guarded_protocol(ServerSettings()))
    plain, plain_seen = await served("httptools")
    assert guarded == plain and guarded.count(b"HTTP/1.1 200 OK") == 3
    assert seen == [
        ("1.2.3.4", "CheckedHeadCycle"),
        ("127.0.0.1", "CheckedHeadCycle"),
        ("127.0.0.1", "CheckedHeadCycle"),
    ]
    assert [client for client, _ in plain_seen] == [client for client, _ in seen]
