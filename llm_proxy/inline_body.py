"""A small request body written with its head in the request's own task, not in a task aiohttp makes for it.

aiohttp sends a request's head and body from a task it makes for the body (`ClientRequest.write_bytes`), so that
a body larger than the connection's buffer is written while the response is awaited. On Python 3.12 and later it
starts that task eagerly; on 3.11 (the gateway's) the task is made, scheduled, and run on the loop's next turn:
some 20 Python calls and a task's bookkeeping per request, about 2% of what the gateway spends on a chat
completion, for a body that goes out in one write anyway (aiohttp joins a body to its head).

`InlineBodyRequest` writes such a body as that task would, when nothing could make the task wait: bytes (a
`BytesPayload`) of at most `INLINE_LIMIT` bytes, so that with any sane head they stay below the writer's drain mark
(a head that passes it is drained first, as there); a connection whose writing is not paused; no
`Expect: 100-continue`, compression, chunking, trace hooks, upload tracker or proxy; a transport not closing
(aiohttp's task would run after the loss, and the response fail as disconnected). The same bytes go out in the same
single write, and the read timeout starts at the same point (after the body). Anything else goes to aiohttp's own
`send`.

It relies on aiohttp's internals (`send`'s steps, the request's private fields); `tests/llm_proxy/test_inline_body.py`
fails if a new aiohttp changes `send` or `write_bytes`, rather than the gateway silently diverging from them.
"""

from __future__ import annotations

import aiohttp
from aiohttp import hdrs
from aiohttp.client_reqrep import ClientResponse
from aiohttp.connector import Connection
from aiohttp.http import HttpVersion11, StreamWriter
from aiohttp.payload import BytesPayload

INLINE_LIMIT = 0x8000
"""The largest body written inline: with any sane head it stays below the 64 KiB at which aiohttp's writer would
wait for the connection to drain (and so start the read timeout later)."""

_DRAIN_MARK = 0x10000
"""`StreamWriter.write`'s default `LIMIT`: the buffered bytes above which it waits for a drain."""


class InlineBodyRequest(aiohttp.ClientRequest):
    """A `ClientRequest` that writes a small bytes body with its head, without a task for it."""

    async def send(self, conn: Connection) -> ClientResponse:
        body = self._body
        protocol = conn.protocol
        if (
            type(body) is not BytesPayload
            or len(body._value) > INLINE_LIMIT
            or protocol is None
            or protocol.writing_paused
            or protocol.transport is None
            or protocol.transport.is_closing()  # aiohttp's task would find it lost: its error, not a failed write
            or self._continue is not None
            or self._traces
            or self._upload_tracker is not None
            or self.compress
            or self.chunked is not None
            or self.proxy is not None
            or self.method not in self.POST_METHODS
            or self.version != HttpVersion11
            or conn._connector.force_close
            or hdrs.CONTENT_TYPE not in self.headers
        ):
            return await super().send(conn)
        # aiohttp's `send` for this case: origin-form target, the headers as they are (a content type given, and no
        # `Connection` header to add on an HTTP/1.1 connection kept alive), the head buffered to go with the body.
        writer = StreamWriter(protocol, self.loop)
        await writer.write_headers(f"{self.method} {self.url.raw_path_qs} HTTP/1.1", self.headers)
        # `write_bytes` for it: the body cut to the declared length, head and body in one write, end of message,
        # then the read timeout. The transport is open (checked above), so the write cannot fail.
        length = self._get_content_length()
        await writer.write(body._value if length is None else body._value[:length], drain=False)
        if writer.buffer_size > _DRAIN_MARK:  # a head of more than 32 KiB: wait as aiohttp would
            await writer.drain()
        await writer.write_eof()
        protocol.start_timeout()
        # The response as `send` makes it, with no body writer left to wait for and no 100-continue.
        # fmt: off
        self.response = self.response_class(
            self.method, self.original_url, writer=None, continue100=None, timer=self._timer,
            request_info=self.request_info, traces=self._traces, loop=self.loop, session=self._session,
            stream_writer=writer,
        )
        # fmt: on
        return self.response
