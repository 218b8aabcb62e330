"""One pipelined Redis connection for the counter scripts: each caller writes its command and awaits its reply.

Redis answers the commands of a connection in the order it got them, so concurrent requests share one connection
without a pool: no checkout, no per-command lock. The commands written in one turn of the event loop leave in one
write (requests read from the network together reserve together), so Redis wakes once for them and answers them in
one read. Replies are parsed by hiredis. Used for plain `redis://host:port/db` URLs (`RespClient.supports`);
anything else (TLS, sockets, Sentinel) keeps redis-py's pool.

Failures are redis-py's exceptions, so callers handle both clients alike: a lost connection fails every command in
flight on it with ConnectionError and the next command connects again; a command that gets no answer within the
timeout fails with TimeoutError and the connection is dropped (the replies behind it could not be trusted to line
up). One timer per connection watches for that, not one per command: replies come in order and every command has
the same timeout, so the oldest command still awaited is always the first due. A command whose connection was lost
is sent once more on a new one, as redis-py's pool does with `Retry(NoBackoff(), 1)`: should the first send have
run after all, its amounts count twice (an over-count only).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import (
    AuthenticationError,
    ConnectionError as RedisConnectionError,
    NoScriptError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        """Each command sent and not yet answered, oldest first, with the loop time its answer is due by."""
        self.watchdog: asyncio.TimerHandle | None = None
        """Set while a command waits: fires when the oldest one is due (`RespClient._watch`)."""
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.outgoing: list[bytes] = []
        """Commands written this turn of the event loop, sent together at its end."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def send(self, command: bytes) -> None:
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self._write)
        self.outgoing.append(command)

    def _write(self) -> None:
        outgoing, self.outgoing = self.outgoing, []
        if self.lost is None and self.transport is not None:  # else their callers have failed already
            self.transport.write(b"".join(outgoing))

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if not waiting:  # an answer nobody asked for: the stream cannot be trusted any more
                self.drop(RedisConnectionError("Redis sent an unexpected reply"))
                return
            future, _ = waiting.popleft()
            if future.done():  # its caller timed out or was cancelled
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_reply_error(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def fail(self, error: BaseException) -> None:
        if self.lost is None:
            self.lost = error
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def drop(self, error: BaseException) -> None:
        self.fail(error)
        if self.transport is not None:
            self.transport.abort()


def _reply_error(message: str) -> Exception:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith(("NOAUTH", "WRONGPASS")):
        return AuthenticationError(message)
    return ResponseError(message)


class RespClient:
    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "localhost"
        self._port = parts.port or 6379
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self._db = int(path) if path else 0
        self._timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    @staticmethod
    def supports(url: str) -> bool:
        """Whether the URL is a plain TCP one this client speaks (no TLS, socket path or query options)."""
        parts = urlsplit(url)
        if parts.scheme != "redis" or parts.query or parts.fragment:
            return False
        path = parts.path.strip("/")
        return not path or path.isdigit()

    async def execute(self, *args: Any) -> Any:
        try:
            # `_send`, written out: the usual first try costs no coroutine of its own.
            protocol = self._protocol
            if protocol is None or protocol.lost is not None:
                protocol = await self._connection()
            return await self._call(protocol, args)
        except RedisConnectionError:
            return await self._send(args)  # once more, on a new connection

    async def _send(self, args: tuple[Any, ...]) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connection()
        return await self._call(protocol, args)

    def _call(self, protocol: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Send the command; its reply is the future's (awaited directly: no coroutine per command)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        protocol.waiting.append((future, loop.time() + self._timeout))
        if protocol.watchdog is None:
            protocol.watchdog = loop.call_later(self._timeout, self._watch, protocol)
        protocol.send(hiredis.pack_command(args))
        return future

    def _watch(self, protocol: _Protocol) -> None:
        """Fail the oldest command still awaited once it is due (and drop the connection), else wait for it.

        A command whose caller gave up (cancelled) is not waited for, as its caller is gone; the next one is.
        """
        protocol.watchdog = None
        loop = asyncio.get_running_loop()
        for future, due in protocol.waiting:
            if future.done():
                continue
            wait = due - loop.time()
            if wait > 0:
                protocol.watchdog = loop.call_later(wait, self._watch, protocol)
                return
            future.set_exception(RedisTimeoutError(f"Redis did not answer within {self._timeout:g}s"))
            protocol.drop(RedisConnectionError("dropped after a command timed out"))
            if self._protocol is protocol:
                self._protocol = None
            return

    async def _connection(self) -> _Protocol:
        # Concurrent callers wait for one connection attempt.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        protocol: _Protocol | None = None
        try:
            async with asyncio.timeout(self._timeout):
                _, protocol = await loop.create_connection(_Protocol, self._host, self._port)
                if self._password is not None:
                    auth = ("AUTH", self._username, self._password) if self._username else ("AUTH", self._password)
                    await self._call(protocol, auth)
                if self._db:
                    await self._call(protocol, ("SELECT", self._db))
        except BaseException as exc:
            if protocol is not None:
                protocol.drop(RedisConnectionError("connection set-up failed"))
            if isinstance(exc, OSError | TimeoutError):
                raise RedisConnectionError(f"cannot connect to Redis at {self._host}:{self._port}: {exc}") from exc
            raise
        self._protocol = protocol
        return protocol

    async def aclose(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            protocol.fail(RedisConnectionError("the counter store is closed"))
