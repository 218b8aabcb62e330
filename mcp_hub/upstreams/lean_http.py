"""A lean HTTP/1.1 client of one origin, for the `tools/call` fast path's requests (`fast_http.py`).

aiohttp's client runs about a hundred Python calls per request (a `ClientRequest` and `ClientResponse`, the payload
registry, a `StreamReader`, the writer, a timer rescheduled on every read), about 400k instructions of a tool call's
1.5M; this client sends the same request and reads the same answer in about a fifth of that. What it keeps of
aiohttp's client, as `FastHttp` configured it:

- the wire: `Host`, the session's headers then the request's, aiohttp's defaults where the caller set none
  (`Accept: */*`, `Accept-Encoding: gzip, deflate`, its `User-Agent`), `Content-Length`, the URL's credentials as
  Basic authorization; gzip and deflate bodies decoded; a header value with CR or LF refused (`ValueError`);
- cookies: the same jar (`aiohttp.CookieJar`, or `DummyCookieJar`), read for each request, fed every `Set-Cookie`;
- pooling: keep-alive connections reused (the most recently released first), at most `LIMIT` open at once (the
  rest wait, as with aiohttp's connector), an idle one closed after `KEEPALIVE` seconds; a connection the answer
  asks to close (`Connection: close`, HTTP/1.0), or whose answer was not read to its end, is closed, not pooled;
- TLS for `https` (`ssl.create_default_context()` with ALPN `http/1.1`, as aiohttp's verified context), SNI;
- timeouts: `connect_timeout` on opening a connection (`aiohttp.ConnectionTimeoutError`), `read_timeout` between
  reads while an answer is awaited or read (`aiohttp.SocketTimeoutError`);
- failures, as aiohttp's `ClientError`s at the same steps, so the callers map them as before: a failed connect
  (`ClientOSError`), a connection lost before the answer's head (`ServerDisconnectedError`) or within its body
  (`ClientPayloadError`), an answer that is not HTTP (`ClientConnectionError`).

Redirects are not followed (the fast path never asks for it) and no proxy is used (aiohttp's session did not read
the environment). The answer's headers are a dict by lower-case name (the first value of a repeated one).
"""

from __future__ import annotations

import asyncio
import functools
import math
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any, Final, cast

import aiohttp
import httptools
from aiohttp.abc import AbstractCookieJar
from aiohttp.http import SERVER_SOFTWARE
from yarl import URL

LIMIT: Final = 100
"""Connections open at once (aiohttp's connector's default `limit`)."""
KEEPALIVE: Final = 15.0
"""Seconds an idle pooled connection is kept (aiohttp's connector's default `keepalive_timeout`)."""
HIGH_WATER: Final = 256 * 1024
"""Bytes of an answer's body buffered unread before the connection stops reading (an event stream read slowly)."""
DEFAULTS: Final = {"accept": "*/*", "accept-encoding": "gzip, deflate", "user-agent": SERVER_SOFTWARE}
"""What aiohttp adds to a request whose headers lack it."""


class LeanHttp:
    """The pooled HTTP/1.1 connections to the origin of `url` (see the module doc)."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        cookie_jar: AbstractCookieJar,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: the context of an `https` URL's connections (None: `verified_context()`)."""
        self.url = URL(url)
        if self.url.scheme not in ("http", "https") or not self.url.host:
            raise ValueError(f"not an HTTP URL: {url!r}")
        self.cookie_jar = cookie_jar
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._host, self._port = self.url.host, self.url.port or (443 if self.url.scheme == "https" else 80)
        self._ssl = tls
        base = {"host": self.url.host_port_subcomponent or self._host}
        base.update((name.lower(), value) for name, value in headers.items())
        basic = aiohttp.BasicAuth.from_url(self.url)
        if basic is not None and "authorization" not in base:
            base["authorization"] = basic.encode()  # credentials in the URL, as aiohttp sends them
        self._base = base
        self._idle: deque[tuple[_Connection, float]] = deque()
        self._open = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(self, method: str, headers: Mapping[str, str], body: bytes = b"") -> Answer:
        """Send one request and return its answer once its head has come; the caller reads and releases it."""
        head = self._head(method, headers, body)
        # A pooled connection is taken without a coroutine layer (most requests find one).
        connection = self._pooled() or await self._acquire()
        try:
            connection.send(head, body)
            while not connection.has_head:
                await connection.wait()
        except BaseException:
            self._discard(connection)
            raise
        return Answer(self, connection)

    async def aclose(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        while self._idle:
            self._idle.pop()[0].abort()
            self._open -= 1

    def _head(self, method: str, headers: Mapping[str, str], body: bytes) -> bytes:
        sent = self._base.copy()
        for name, value in headers.items():
            sent[name.lower()] = value
        for name, value in DEFAULTS.items():
            if name not in sent:
                sent[name] = value
        if method != "GET" or body:
            sent["content-length"] = str(len(body))
        if len(self.cookie_jar):
            cookies = self.cookie_jar.filter_cookies(self.url)
            if cookies:
                jar = "; ".join(f"{name}={morsel.coded_value}" for name, morsel in cookies.items())
                sent["cookie"] = f"{sent['cookie']}; {jar}" if "cookie" in sent else jar
        fields = [f"{name}: {value}" for name, value in sent.items()]
        text = "\r\n".join(fields)
        separators = len(fields) - 1  # a CR or LF in a name or value would make more
        if text.count("\r") != separators or text.count("\n") != separators:
            raise ValueError("Newline or carriage return character detected in HTTP status message or header.")
        return f"{method} {self.url.raw_path_qs} HTTP/1.1\r\n{text}\r\n\r\n".encode("utf-8", "surrogateescape")

    # The pool.

    def _pooled(self) -> _Connection | None:
        """The most recently released connection still open and within its keep-alive, if any."""
        if self._idle and not self._closed:
            now = asyncio.get_running_loop().time()
            while self._idle:
                connection, since = self._idle.pop()
                if connection.usable and now - since < KEEPALIVE:
                    return connection
                connection.abort()
                self._open -= 1
        return None

    async def _acquire(self) -> _Connection:
        """A pooled connection, else a new one once fewer than `LIMIT` are open."""
        if self._closed:
            raise aiohttp.ClientConnectionError("the client is closed")
        pooled = self._pooled()
        if pooled is not None:
            return pooled
        while self._open >= LIMIT:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # handed a slot it will not use: the next waiter's
                raise
            pooled = self._pooled()
            if pooled is not None:
                return pooled
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self.url.scheme == "https"
        if tls and self._ssl is None:
            self._ssl = verified_context()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self.read_timeout),
                    self._host,
                    self._port,
                    ssl=self._ssl if tls else None,
                    server_hostname=self._host if tls else None,
                )
        except TimeoutError:
            raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {self.url}") from None
        except OSError as exc:
            raise aiohttp.ClientOSError(exc.errno, f"Cannot connect to host {self._host}:{self._port} [{exc}]") from exc
        return connection

    def _release(self, connection: _Connection) -> None:
        """Back to the pool if it may carry another request, else closed."""
        if not connection.reusable or self._closed:
            self._discard(connection)
            return
        loop = asyncio.get_running_loop()
        self._idle.append((connection, loop.time()))
        if self._sweeper is None:
            self._sweeper = loop.call_later(KEEPALIVE, self._sweep)
        self._wake()

    def _discard(self, connection: _Connection) -> None:
        connection.abort()
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        """Close the connections idle for `KEEPALIVE` seconds; come back while any is left."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._idle and (now - self._idle[0][1] >= KEEPALIVE or not self._idle[0][0].usable):
            self._idle.popleft()[0].abort()
            self._open -= 1
        if self._idle:
            self._sweeper = loop.call_at(self._idle[0][1] + KEEPALIVE, self._sweep)

    def _took_cookies(self, values: list[str]) -> None:
        for value in values:
            cookie: SimpleCookie = SimpleCookie()
            try:
                cookie.load(value)
            except CookieError:
                continue
            self.cookie_jar.update_cookies(cookie, self.url)


@functools.cache
def verified_context() -> ssl.SSLContext:
    """aiohttp's verified TLS context: the system's trust store, ALPN `http/1.1`; made once (it reads the store
    from disk), on the first `https` connection."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context


class Answer:
    """An answer whose head has come: `status`, `headers` (by lower-case name), the body to `read` or iterate
    (`chunks`); `release` or `close` it once done (either closes the connection if the body was not read)."""

    __slots__ = ("_client", "_connection", "_done", "headers", "status")

    def __init__(self, client: LeanHttp, connection: _Connection) -> None:
        self._client = client
        self._connection = connection
        self._done = False
        self.status = connection.status
        self.headers = connection.headers
        if connection.cookies:
            client._took_cookies(connection.cookies)

    async def read(self) -> bytes:
        """The whole body (decoded, if gzip or deflate)."""
        connection = self._connection
        if not connection.complete:  # (most answers are whole by now: no coroutine call per chunk)
            connection.unbounded()
            while not connection.complete:
                await connection.wait()
        parts = connection.taken()
        self._finish()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks as they come (decoded, if gzip or deflate)."""
        connection = self._connection
        while True:
            chunk = await connection.next_chunk()
            if not chunk:
                self._finish()
                return
            yield chunk

    def release(self) -> None:
        self._finish()

    def close(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._client._release(self._connection)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed by httptools."""

    def __init__(self, read_timeout: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._read_timeout = read_timeout
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._lost = False
        self._failure: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._paused = False
        self._high_water: float = HIGH_WATER
        self._buffered = 0
        self._body: deque[bytes] = deque()
        self._decoder: Any = None
        self._length_known = True
        self.status = 0
        self.headers: dict[str, str] = {}
        self.cookies: list[str] = []
        self.has_head = False
        self.complete = False
        self.keep_alive = False

    @property
    def usable(self) -> bool:
        """Open and idle (its last answer read to its end)."""
        return not self._lost and self._transport is not None and not self._transport.is_closing()

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and self.usable and self._failure is None

    def send(self, head: bytes, body: bytes) -> None:
        assert self._transport is not None
        self.status, self.headers, self.cookies = 0, {}, []
        self.has_head = self.complete = False
        self._body.clear()
        self._buffered = 0
        self._high_water = HIGH_WATER
        self._decoder = None
        self._transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self._transport.write(body)
        self._last_read = self._loop.time()
        if self._read_timeout is not None:
            self._timer = self._loop.call_at(self._last_read + self._read_timeout, self._check_read)

    def unbounded(self) -> None:
        """Buffer the rest of the body whatever its size (it is read whole): reading is not paused."""
        self._high_water = math.inf
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def taken(self) -> list[bytes]:
        """The whole body, once `complete`."""
        parts = list(self._body)
        self._body.clear()
        return parts

    async def next_chunk(self) -> bytes:
        """The next chunk of the body, or b"" at its end."""
        while not self._body:
            if self.complete:
                return b""
            await self.wait()
        chunk = self._body.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < self._high_water and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    def abort(self) -> None:
        self._stop_timer()
        if self._transport is not None:
            self._transport.abort()

    async def wait(self) -> None:
        """Until the answer's head, body or end comes; its failure raised."""
        if self._failure is not None:
            raise self._failure
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
        if self._failure is not None:
            raise self._failure

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, failure: BaseException) -> None:
        if self._failure is None:
            self._failure = failure
        self._stop_timer()
        self._wake()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_read(self) -> None:
        """The read timer: fail the answer if nothing came for `read_timeout`, else look again when it might."""
        assert self._read_timeout is not None
        due = self._last_read + self._read_timeout
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check_read)
            return
        self._timer = None
        self._fail(aiohttp.SocketTimeoutError(f"Timeout on reading data from socket after {self._read_timeout}s"))
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # (uvloop's is one in all but its class)

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(aiohttp.ClientConnectionError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(aiohttp.ClientConnectionError(f"not an HTTP answer: {exc}"))
        if self._failure is not None and self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self.complete:
            return
        if self.has_head and not self._length_known and self._failure is None:
            self._end_body()  # a body read to the connection's end
            return
        if self.has_head:
            self._fail(aiohttp.ClientPayloadError("Response payload is not completed"))
        else:
            self._fail(aiohttp.ServerDisconnectedError())

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.headers, self.cookies = {}, []  # (an informational answer's are not the answer's)

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("utf-8", "surrogateescape")
        if key == "set-cookie":
            self.cookies.append(text)
        self.headers.setdefault(key, text)

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:
            return  # informational (`100 Continue`, which nothing here asks for): the answer follows
        self.keep_alive = self._parser.should_keep_alive()
        headers = self.headers
        self._length_known = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
        coding = headers.get("content-encoding", "").lower()
        if coding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._decoder = _Deflate()
        self.has_head = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                self._fail(aiohttp.ClientPayloadError(f"cannot decode the answer's body: {exc}"))
                return
            if not body:
                return
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered >= self._high_water and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.has_head:
            self._end_body()

    def _end_body(self) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._body.append(rest)
        self.complete = True
        self._stop_timer()
        self._wake()


class _Deflate:
    """A `deflate` body: zlib-wrapped as the standard says, or raw deflate as some servers send it (aiohttp's way)."""

    def __init__(self) -> None:
        self._inner: Any = None

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if data[:1] and (data[0] & 0x0F) == 8 else -zlib.MAX_WBITS)
        result: bytes = self._inner.decompress(data)
        return result

    def flush(self) -> bytes:
        return b"" if self._inner is None else bytes(self._inner.flush())
