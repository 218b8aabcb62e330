"""An upstream's SSE polling (SEP-1699), passed on: when it closes a call's stream, the hub closes its client's.

A 2025-11-25 server may end a request's SSE stream before the response, to be polled rather than hold a connection;
the client reconnects with `Last-Event-ID` and gets the rest. The hub's upstream client does that reconnecting on its
own, so without this the hub's client would never see the server poll. With it, the moment the hub reconnects to
the upstream for a call, it closes that call's stream to its client too (whose reconnection the hub's event store,
`resume.py`, serves), so a client through the hub sees what it would see talking to the server directly.

The upstream client reconnects in the task that made the call, so the call's `close_sse_stream` callback (the
SDK's, present for 2025-11-25 sessions with an event store) is found in a context variable set around the call.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

import httpx2
from mcp.server import ServerRequestContext
from mcp.shared.message import CloseSSEStreamCallback

LAST_EVENT_ID = "last-event-id"

_CLOSE_CLIENT_STREAM: ContextVar[CloseSSEStreamCallback | None] = ContextVar("isthmus_close_sse", default=None)


class passed_on:
    """Upstream reconnections made inside close the stream of the client request `ctx`.

    A class, not a `contextmanager`: it wraps every tool call, and a generator-based manager costs a generator, its
    frame and a helper object more per call. A request without a stream to close (every 2026-07-28 request, and a
    2025-era one without an event store), made where none is passed on already, leaves the variable as it is: setting
    it to None and back would change nothing.
    """

    __slots__ = ("_close", "_token")

    def __init__(self, ctx: ServerRequestContext[Any, Any]) -> None:
        self._close = ctx.close_sse_stream
        self._token: Token[CloseSSEStreamCallback | None] | None = None

    def __enter__(self) -> None:
        close = self._close
        if close is not None or _CLOSE_CLIENT_STREAM.get() is not None:
            self._token = _CLOSE_CLIENT_STREAM.set(close)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._token is not None:
            _CLOSE_CLIENT_STREAM.reset(self._token)
            self._token = None


async def on_upstream_request(request: httpx2.Request) -> None:
    """httpx2 request hook of an upstream's HTTP client: a resumption GET means the upstream closed a call's stream."""
    if request.method != "GET" or LAST_EVENT_ID not in request.headers:
        return
    await upstream_stream_closed()


async def upstream_stream_closed() -> None:
    """The upstream closed the current call's stream and the hub resumes it: close the client's too."""
    close = _CLOSE_CLIENT_STREAM.get()
    if close is not None:
        await close()
