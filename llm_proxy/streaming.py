"""Server-sent events, both ways: parsing a provider's stream and serving one to the client.

`sse_events` parses bytes as they arrive (no line-length limit, CRLF or LF). `EventStreamResponse` is a pure ASGI
response that sends each chunk as soon as it is produced and, when the client goes away, cancels the producer and
closes it, which closes the upstream request too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: str


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncGenerator[SSEEvent, None]:
    """Split a byte stream into events; comments and `id`/`retry` fields are ignored."""
    pending = b""
    event: str | None = None
    data: list[str] = []
    async for chunk in chunks:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    yield SSEEvent(event, "\n".join(data))
                event, data = None, []
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                data.append(value.decode("utf-8", "replace"))
            elif name == b"event":
                event = value.decode("utf-8", "replace")
    if pending.startswith(b"data:"):
        data.append(pending[5:].lstrip(b" ").decode("utf-8", "replace"))
    if data:
        yield SSEEvent(event, "\n".join(data))


def _dumps(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def data_frame(payload: Mapping[str, Any]) -> bytes:
    """An OpenAI-style frame: `data: {...}`."""
    return b"data: " + _dumps(payload) + b"\n\n"


def event_frame(payload: Mapping[str, Any]) -> bytes:
    """An Anthropic-style frame: `event: <type>` then `data: {...}`."""
    return b"event: " + str(payload.get("type", "message")).encode() + b"\ndata: " + _dumps(payload) + b"\n\n"


class EventStreamResponse(Response):
    """Streams `body` as `text/event-stream`; a client disconnect cancels and closes `body`, then `on_close` runs."""

    media_type = "text/event-stream"

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        *,
        headers: Mapping[str, str],
        on_close: Callable[[], Awaitable[None]] | None = None,
        status_code: int = 200,
    ) -> None:
        self.frames = body
        self.on_close = on_close
        self.status_code = status_code
        self.background = None
        self.init_headers({**SSE_HEADERS, **headers})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._stream(receive, send)
        finally:
            if self.on_close is not None:
                # The body may never have started (the client left at once): its owner still has to clean up.
                with anyio.CancelScope(shield=True):
                    await self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        async with aclosing(self.frames) as body, anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            try:
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                async for chunk in body:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                # ASGI 2.4 servers raise on send after a disconnect instead of reporting it through receive().
                logger.debug("client went away during a stream")
            group.cancel_scope.cancel()
