"""uvicorn's httptools protocol with the limits uvicorn lacks against slow and flooding clients.

uvicorn closes idle kept-alive connections, but a client that opens a connection and sends nothing, or sends its
headers a byte at a time (slowloris), or stalls in the middle of a body, holds the connection (and a file
descriptor) forever. This protocol gives each request's head a deadline and each body an idle limit, and caps the
connections open at once, preferring to drop a connection that is not being served over refusing a new one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from asyncio import TimerHandle
from collections.abc import Callable
from typing import Any, cast

from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from isthmus.forwarded import unwrapped
from isthmus.response_head import CheckedHeadCycle
from toolpolicy.server_settings import ServerSettings

logger = logging.getLogger(__name__)

FD_RESERVE = 256
"""File descriptors kept for everything other than client connections: the store, Redis, upstreams, logs."""
SHUTDOWN_GRACE = 0.5
"""Seconds a connection with no request yet stays open at shutdown, for a request already on its way to arrive."""
EARLY = 0.001
"""A deadline's timer that fires this close before the deadline counts as on time: the event loop's clock (libuv's,
under uvloop) counts whole milliseconds."""


def _plain_response(status: bytes, text: bytes) -> bytes:
    return b"".join(
        [
            b"HTTP/1.1 " + status + b"\r\n",
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(text)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            text,
        ]
    )


REQUEST_TIMEOUT = _plain_response(b"408 Request Timeout", b"Request Timeout")
TOO_MANY_CONNECTIONS = _plain_response(b"503 Service Unavailable", b"Too many connections")


class Deadline:
    """A deadline that moves on every request and almost never passes: `set` and `clear` only note when it is, and
    one timer, started when there is none, checks it when it fires, and starts again for the deadline as it is by
    then. A timer started and cancelled each time the deadline moves (two or three times a request) costs more
    than the rest of the connection's bookkeeping; `stop` cancels the timer, for a connection that ended."""

    __slots__ = ("callback", "handle", "loop", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self.loop = loop
        self.callback = callback
        self.when: float | None = None
        self.handle: TimerHandle | None = None

    def set(self, seconds: float) -> None:
        """The deadline is `seconds` from now (never earlier than a timer already running: the time only grows)."""
        self.when = self.loop.time() + seconds
        if self.handle is None:
            self.handle = self.loop.call_at(self.when, self._check)

    def clear(self) -> None:
        self.when = None

    def stop(self) -> None:
        self.when = None
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _check(self) -> None:
        self.handle = None
        when = self.when
        if when is None:
            return
        if self.loop.time() + EARLY < when:  # it moved since the timer started
            self.handle = self.loop.call_at(when, self._check)
            return
        self.when = None
        self.callback()


class RequestLimit:
    """The app behind a cap on requests handled at once: past it, requests get 503 without reaching the app."""

    def __init__(self, app: ASGI3Application, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.active = 0

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if self.active >= self.limit:
            logger.warning("refusing a request: %d requests are being handled (server.max_requests)", self.active)
            await service_unavailable(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class ConnectionBook:
    """The connections of one server process: how many are open, and which are not being served (idle between
    requests or still sending a request's head), oldest first, so the oldest can make room for a new one."""

    def __init__(self, limits: ServerSettings) -> None:
        self.limits = limits
        self.open = 0
        self.waiting: dict[GuardedHttpToolsProtocol, None] = {}
        self._served: tuple[ASGI3Application, ASGI3Application] | None = None

    def app(self, app: ASGI3Application) -> ASGI3Application:
        """`app` as connections serve it: uvicorn's proxy-headers middleware without its coroutine (`forwarded`),
        behind `max_requests` when set (one counter for every connection)."""
        if self._served is None or self._served[0] is not app:
            served = unwrapped(app)
            if self.limits.max_requests is not None:
                served = RequestLimit(served, self.limits.max_requests)
            self._served = (app, served)
        return self._served[1]

    def __getstate__(self) -> dict[str, Any]:
        # `--workers` sends the protocol factory to each worker: each starts with an empty book of its own.
        return {"limits": self.limits}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limits"])  # type: ignore[misc]


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One client connection, with a deadline on each request's head, an idle limit on its body, and a place in
    its server's `ConnectionBook`."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        book: ConnectionBook,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.book = book
        self.limits = book.limits
        self.timeout_keep_alive = self.limits.keep_alive_timeout  # type: ignore[assignment]
        self.limit_concurrency = None  # connections and requests are capped here, not by uvicorn's shared count
        self.app = book.app(self.app)
        self.counted = False
        self.head = Deadline(self.loop, self.head_timed_out)
        self.body = Deadline(self.loop, self.body_timed_out)
        self.idle = Deadline(self.loop, self.timeout_keep_alive_handler)
        """uvicorn's keep-alive timeout (`timeout_keep_alive_task`) as a deadline: uvicorn starts a timer when each
        response is complete and cancels it when the next request comes, a timer made and dropped per request."""

    # -- the connection cap --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        book = self.book
        if book.open >= self.limits.max_connections:
            oldest = next(iter(book.waiting), None)
            if oldest is None:
                logger.warning("refusing a connection: %d are open and busy (server.max_connections)", book.open)
                transport.write(TOO_MANY_CONNECTIONS)
                transport.close()
                return
            oldest.drop()
        book.open += 1
        self.counted = True
        book.waiting[self] = None
        self.head.set(self.limits.header_timeout)

    def drop(self) -> None:
        """Close this connection (one that is not being served) to make room for a new one."""
        self.leave_book()
        self.transport.close()

    def leave_book(self) -> None:
        self.cancel_timers()
        self.book.waiting.pop(self, None)
        if self.counted:
            self.counted = False
            self.book.open -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.leave_book()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """At server shutdown. A connection with no request yet may have one on its way (nginx connects, then
        sends): closing it now resets it, and a load balancer does not retry a POST it has sent. So it gets
        `SHUTDOWN_GRACE` seconds for a request to arrive, served with the connection closing after it."""
        if self.cycle is None and self in self.book.waiting and not self.transport.is_closing():
            self.loop.call_later(SHUTDOWN_GRACE, super().shutdown)
            return
        super().shutdown()

    def handle_websocket_upgrade(self) -> None:
        self.leave_book()  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade()

    # -- the request head's deadline -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.head.when is None and self in self.book.waiting:
            # Bytes on an idle kept-alive connection (uvicorn stops its keep-alive timer now, even for bare CRLFs
            # that start no request): the next request's head has its own deadline from here.
            self.head.set(self.limits.header_timeout)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head.when is None:  # a pipelined request: its head has its own deadline
            self.head.set(self.limits.header_timeout)

    def on_headers_complete(self) -> None:
        self.head.clear()
        self.book.waiting.pop(self, None)
        earlier = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not earlier and type(cycle) is RequestResponseCycle:
            # The cycle uvicorn just made, before its task first runs (and looks up `send`): it writes its response
            # as uvicorn's does, with fewer steps (`response_head`).
            cycle.__class__ = CheckedHeadCycle
        self.body.set(self.limits.body_timeout)

    def head_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # An earlier request's response is still going out: let it finish, then close instead of reading on.
            cycle.keep_alive = False
            return
        self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    # -- the body's idle limit -----------------------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self.body.set(self.limits.body_timeout)

    def on_message_complete(self) -> None:
        self.body.clear()
        super().on_message_complete()

    def body_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None:  # an upgrade that was not taken: nothing reads this connection
            self.transport.close()
            return
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # The gateway stopped reading, or the client waits for `100 Continue` until the app asks for the body:
            # either way the app has not taken the body yet, and the client is not the slow one.
            self.body.set(self.limits.body_timeout)
            return
        if not cycle.response_started:
            self.transport.write(REQUEST_TIMEOUT)
        # The app sees the client gone at once, so it cannot write a response after the 408.
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.close()

    # -- timers --------------------------------------------------------------------------------------------------

    def cancel_timers(self) -> None:
        self.head.stop()
        self.body.stop()
        self.idle.stop()

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls it when data comes and when the connection ends (`cancel_timers` stops the timer then).
        self.idle.clear()

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive timeout set on `idle` instead of a timer of its own.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.idle.clear()
        self.flow.resume_reading()  # unpause data reads if needed
        if self.pipeline:  # a pipelined request starts now; else the connection is idle until the next one
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.idle.set(self.timeout_keep_alive)
        if self.counted and (self.cycle is None or self.cycle.response_complete):
            self.book.waiting[self] = None  # idle until the next request: first in line to make room


def guarded_protocol(limits: ServerSettings) -> type[asyncio.Protocol]:
    """The `http=` protocol for uvicorn: connections of one server process share one book."""
    factory = functools.partial(GuardedHttpToolsProtocol, book=ConnectionBook(limits))
    return cast(type[asyncio.Protocol], factory)  # uvicorn calls it as it would call the class


def fit_descriptor_limit(connections: int) -> int | None:
    """Raise this process's open-file limit so `connections` client connections fit (never above the hard limit);
    return the limit when they still do not fit, else None."""
    needed = connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return None if target >= needed else target
