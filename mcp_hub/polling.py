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

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx2
from mcp.server import ServerRequestContext
from mcp.shared.message import CloseSSEStreamCallback

LAST_EVENT_ID = "last-event-id"

_CLOSE_CLIENT_STREAM: ContextVar[CloseSSEStreamCallback | None] = ContextVar("isthmus_close_sse", default=None)


@contextmanager
def passed_on(ctx: ServerRequestContext[Any, Any]) -> Iterator[None]:
    """Upstream reconnections made inside close the stream of the client request `ctx`."""
    token = _CLOSE_CLIENT_STREAM.set(ctx.close_sse_stream)
    try:
        yield
    finally:
        _CLOSE_CLIENT_STREAM.reset(token)


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
