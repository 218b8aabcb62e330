"""A minimal HTTP/1.1 server for the benchmark's mock upstreams: asyncio protocols, httptools parsing, keep-alive.

The mocks must not be the bottleneck, so this skips everything a framework adds: a handler gets the parsed request
and returns the whole raw response as bytes, or an async iterator of raw pieces for streamed responses. Requests
on one connection are answered in order; while a streamed response is being written, later requests wait.
`TCP_NODELAY` is set on every connection: without it a response written in two pieces stalls 40 ms on loopback
(Nagle's algorithm waiting for the delayed ACK).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

import httptools


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased; a repeated header keeps its last value."""
    body: bytes = b""
    keep_alive: bool = True


Reply = bytes | AsyncIterator[bytes]
Handler = Callable[[Request], Reply | Awaitable[Reply]]


def response(
    status: int, body: bytes = b"", *, content_type: str = "application/json", headers: dict[str, str] | None = None
) -> bytes:
    """A complete raw response with Content-Length."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"content-type: {content_type}"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked_head(status: int, content_type: str, headers: dict[str, str] | None = None) -> bytes:
    """The head of a response whose body follows as chunks made by `chunk`, ended by `LAST_CHUNK`."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"content-type: {content_type}"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    lines.append("transfer-encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


@dataclass(slots=True)
class _Parsing:
    url: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    body: list[bytes] = field(default_factory=list)


class HttpProtocol(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current = _Parsing()
        self.pending: deque[Request] = deque()
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(response(400, b'{"error": "malformed HTTP request"}'))
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.current = _Parsing()

    def on_url(self, url: bytes) -> None:
        self.current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.current.body.append(body)

    def on_message_complete(self) -> None:
        parsed = httptools.parse_url(self.current.url)
        request = Request(
            method=self.parser.get_method().decode(),
            path=parsed.path.decode("latin-1"),
            headers=self.current.headers,
            body=b"".join(self.current.body),
            keep_alive=self.parser.should_keep_alive(),
        )
        if self.busy:
            self.pending.append(request)
        else:
            self._dispatch(request)

    def _dispatch(self, request: Request) -> None:
        try:
            reply = self.handler(request)
        except Exception as exc:  # a mock bug must show up as a 500 the benchmark counts, not a hung client
            reply = response(500, f'{{"error": "{type(exc).__name__}"}}'.encode())
        if isinstance(reply, bytes):
            self._write(reply, request.keep_alive)
            return
        self.busy = True
        asyncio.get_running_loop().create_task(self._finish(reply, request.keep_alive))

    async def _finish(self, reply: Awaitable[Reply] | AsyncIterator[bytes], keep_alive: bool) -> None:
        try:
            if isinstance(reply, AsyncIterator):
                async for piece in reply:
                    if self.transport is None:
                        return
                    self.transport.write(piece)
                self._write(b"", keep_alive)
            else:
                resolved = await reply
                if isinstance(resolved, bytes):
                    self._write(resolved, keep_alive)
                else:
                    await self._finish(resolved, keep_alive)
                    return
        finally:
            self.busy = False
        while self.pending and not self.busy and self.transport is not None:
            self._dispatch(self.pending.popleft())

    def _write(self, data: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        if data:
            self.transport.write(data)
        if not keep_alive:
            self.transport.close()


async def listen(handler: Handler, host: str, port: int) -> asyncio.Server:
    """Start serving `handler` on `host:port` in the running loop; close the returned server to stop."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpProtocol(handler), host, port, backlog=2048, reuse_address=True)


async def serve_until_signalled(handler: Handler, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM; print `ready` once listening, for the parent process."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with await listen(handler, host, port):
        print("ready", flush=True)
        await stop.wait()


def run(handler: Handler, host: str, port: int) -> None:
    """Serve on uvloop until signalled: the entry point of each mock's process."""
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve_until_signalled(handler, host, port))
