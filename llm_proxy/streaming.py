"""Server-sent events, both ways: parsing a provider's stream and serving one to the client.

`EventSplitter` parses bytes as they arrive (no line-length limit, CRLF or LF). `EventStreamResponse` is a pure ASGI
response that sends each frame as soon as it is produced (those produced together in one message) and, when the
client goes away, cancels the producer and closes it, which closes the upstream request too. `OpeningEventStream` is
one returned before its stream exists: a task of its own opens it (the provider's first item) and relays it, while
the request's task waits for the client to leave.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from llm_proxy.burst import Pending, probe, ready_or, shielded
from llm_proxy.upstream import dumps

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
BODY_FOLLOWS = "isthmus.body_follows"
"""Set in an `http.response.start` message whose first body message is sent right after it, without waiting for
anything: Isthmus's server (`isthmus.response_head`) then writes the head with that body, in one write of the
socket; other servers ignore it."""
_GATHER_LIMIT = 64 * 1024
"""Frames that came together go out together up to this many bytes: a huge burst is not held whole."""


class EventSplitter:
    """The events of a byte stream fed to it as it arrives, each as (event name, data bytes): the work done for each
    network read is one synchronous call, whatever number of events it holds."""

    __slots__ = ("data", "event", "pending")

    def __init__(self) -> None:
        self.pending = b""
        self.event: str | None = None
        self.data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        lines = (self.pending + chunk if self.pending else chunk).split(b"\n")
        self.pending = lines.pop()
        events: list[tuple[str | None, bytes]] = []
        event, data = self.event, self.data
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if line.startswith(b"data: "):  # nearly every line a provider sends
                data.append(line[6:])
                continue
            if not line:
                if data:
                    events.append((event, data[0] if len(data) == 1 else b"\n".join(data)))
                    data = []
                event = None
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value.decode("utf-8", "replace")
        self.event, self.data = event, data
        return events

    def end(self) -> list[tuple[str | None, bytes]]:
        """The last event, when the stream ended without the blank line after it."""
        data = self.data
        if self.pending.startswith(b"data:"):
            data.append(self.pending[5:].lstrip(b" "))
        return [(self.event, b"\n".join(data))] if data else []


class Received(dict[str, Any]):
    """A JSON object read from one event of a provider's stream, with the event's data as it came (`data`, one line):
    an OpenAI chunk relayed unchanged is framed from these bytes, not encoded again."""

    __slots__ = ("data",)
    data: bytes


def data_frame(payload: Mapping[str, Any]) -> bytes:
    """An OpenAI-style frame: `data: {...}`."""
    return b"data: " + dumps(payload) + b"\n\n"


def event_frame(payload: Mapping[str, Any]) -> bytes:
    """An Anthropic-style frame: `event: <type>` then `data: {...}`."""
    return b"event: " + str(payload.get("type", "message")).encode() + b"\ndata: " + dumps(payload) + b"\n\n"


def relayed_frame(payload: Mapping[str, Any]) -> bytes:
    """`data_frame`, from the provider's own bytes when `payload` is an object as it was received: the same JSON
    value, in the provider's spelling (spacing, escapes), which a client's JSON parser reads the same. Only for
    objects nothing changed in place since they were read (see `Received`)."""
    return b"data: " + (payload.data if type(payload) is Received else dumps(payload)) + b"\n\n"


def relayed_event_frame(payload: Mapping[str, Any]) -> bytes:
    """`event_frame` as `relayed_frame` is `data_frame`."""
    return b"event: " + str(payload.get("type", "message")).encode() + b"\ndata: " + _json_of(payload) + b"\n\n"


def _json_of(payload: Mapping[str, Any]) -> bytes:
    return payload.data if type(payload) is Received else dumps(payload)


class EventStreamResponse(Response):
    """Streams `body` as `text/event-stream`; a client disconnect cancels and closes `body`, then `on_close` runs.

    The first frame goes out as soon as it exists, right behind the headers: it is what a streaming client waits on.
    After it, frames `body` produces without waiting (they came from the provider together) go out in one body
    message; a frame is never held for the next one, nor the headers for the first frame (`burst.ready_or`). The
    ASGI messages are sent from the request's own task; one small task waits for the client to leave, and cancels
    the stream when it does.
    """

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
            await self._stream(scope, receive, send)
        finally:
            if self.on_close is not None:
                # The body may never have started (the client left at once): its owner still has to clean up.
                await shielded(self.on_close())

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = _scope_class()()
        watcher: asyncio.Task[None] | None = None

        def watch() -> None:
            # Made before the first send that more frames follow, not before: a stream that ends with nothing sent
            # makes no task.
            nonlocal watcher
            if watcher is None:
                watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(receive, streaming))

        try:
            with streaming:
                async with aclosing(self.frames) as body:
                    await self._relay(body, send, watch)
        except OSError:
            # ASGI 2.4 servers raise on send after a disconnect instead of reporting it through receive().
            logger.debug("client went away during a stream")
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _relay(self, body: AsyncGenerator[bytes, None], send: Send, waiting: Callable[[], None]) -> None:
        """The headers go as soon as `body` has its first frame, with that frame alone (or before, as soon as `body`
        has to wait for it): the first event is what a streaming client waits on, so it is not kept while `body` is
        asked for more. After it, what `body` produced goes out as soon as `body` has to wait, and the end with the
        last frames. `waiting()` is called before each send that more frames follow (a send can be stuck on a client
        that reads nothing)."""
        start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        started = False

        async def begin() -> None:
            nonlocal started
            started = True
            waiting()
            await send(start)

        first = await ready_or(anext(body, None), begin)
        if not started:
            await send({**start, BODY_FOLLOWS: True})  # the first frame (or the end) goes with the head
        if first is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        waiting()
        await send({"type": "http.response.body", "body": first, "more_body": True})
        gathered: list[bytes] = []
        size = 0

        async def flush() -> None:
            nonlocal size
            waiting()
            if gathered:
                chunk = gathered[0] if len(gathered) == 1 else b"".join(gathered)
                gathered.clear()
                size = 0
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        # `__anext__` probed directly: `anext(body, None)` would wrap each step in an awaitable of its own.
        next_frame = body.__anext__
        while True:
            try:
                frame = probe(next_frame())  # most frames are ready: no awaitable is made for them
                if isinstance(frame, Pending):
                    frame = await frame.after(flush)
            except StopAsyncIteration:
                break
            gathered.append(frame)
            size += len(frame)
            if size >= _GATHER_LIMIT:
                await flush()
        await send({"type": "http.response.body", "body": b"".join(gathered), "more_body": False})


RawHeaders = list[tuple[bytes, bytes]]
_SSE_RAW: RawHeaders = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in SSE_HEADERS.items()]
_SSE_TYPE = (b"content-type", b"text/event-stream; charset=utf-8")
"""The content type Starlette's `init_headers` adds for `EventStreamResponse.media_type`."""


def event_stream_head(extra: RawHeaders) -> RawHeaders:
    """An event stream's raw headers, as `init_headers({**SSE_HEADERS, **headers})` makes them, from `headers`
    already raw (lower-case names, latin-1) and naming none of `SSE_HEADERS` nor a content type: no dict merged,
    and no name and value encoded, on a stream's way to its first event."""
    return [*_SSE_RAW, *extra, _SSE_TYPE]


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through `object.__setattr__`
class Opened:
    """A stream as `OpeningEventStream`'s opener gives it: the frames, the response's headers (a mapping, or the
    whole raw list that `event_stream_head` makes), and what to run however the stream ends."""

    frames: AsyncGenerator[bytes, None]
    headers: Mapping[str, str] | RawHeaders
    on_close: Callable[[], Awaitable[None]] | None = None


Opener = Callable[[], Awaitable[Opened | Response]]
"""Opens a stream: `Opened`, or the whole answer to send instead (an error, while nothing has been sent)."""


class OpeningEventStream(EventStreamResponse):
    """An `EventStreamResponse` made before its stream exists, whose stream is opened and relayed by a task of its own.

    A streamed answer waits for the provider's first item, to fail over before anything is sent. Made with `start`,
    the opening task runs `open()` first, up to its first wait (the provider's answer); then the route's handler
    returns, and the framework, the server and this response do their part of it while the provider works, instead
    of after its first item, which is what a streaming client waits on. The same task then relays the stream: the
    first item goes to the client in the step that read it. The request's own task, meanwhile, waits for the client
    to leave (it has nothing else to do), and stops the opening task when it does; the opening task wakes it when the
    response is done.

    A client that leaves before the first item cancels `open()` then, once, not at the first send: the provider
    request is closed at once, with what a reasoning model would have spent meanwhile. `open()` cleans up after
    itself when it is cancelled (nothing is opened then); what it opened, `Opened.on_close` does, sent or not. Once
    relaying, a client that leaves cancels the relay's scope, which leaves the stream's shielded cleanup alone.
    """

    def __init__(self) -> None:
        self.opening: asyncio.Task[None] | None = None
        self.call: tuple[Scope, Receive, Send] | None = None
        """The ASGI call, once the server makes it."""
        self.served: asyncio.Future[None] | None = None
        """Made only when the stream opened before the call came: the opening task waits for it."""
        self.left = False
        """The client left, or the call ended: nothing is sent any more."""
        self.stop: Callable[[], object] | None = None
        """What the client leaving does to the opening task: `open()` is cancelled once (natively: a scope would
        cancel its cleanup again at each wait), the relay through its scope; nothing, once the response is done."""
        self.watcher: asyncio.Task[Any] | None = None
        """The call's task while it waits for the client to leave: the opening task wakes it when it ends."""
        self.on_close = None
        self.status_code = 200
        self.background = None
        self.raw_headers = []

    @classmethod
    async def start(cls, open: Opener) -> OpeningEventStream:
        """The response, with `open()` started and run to its first wait."""
        response = cls()
        opening = response.opening = asyncio.get_running_loop().create_task(response._run(open))
        response.stop = opening.cancel
        # The task's first step: routing, and the provider request made and written (a body written with its head,
        # `inline_body`). A body too large for that is written by a task aiohttp makes in that step (on Python 3.11
        # tasks cannot start eagerly), after the rest of the response is made: a step more here would put it first,
        # at the cost of a loop step for every stream, for prompts whose answer takes the provider far longer.
        await asyncio.sleep(0)
        return response

    async def _run(self, open: Opener) -> None:
        try:
            opened = await open()  # a bug raises here, and the call raises it (`open()` answers errors itself)
            try:
                if self.call is None and not self.left:  # the provider was quicker than the framework
                    self.served = asyncio.get_running_loop().create_future()
                    await self.served
            except BaseException:
                await shielded(_close_unsent(opened))
                raise
            if self.left:  # the client left as it opened (`open()` swallowed the cancellation): nobody to send it to
                await shielded(_close_unsent(opened))
                return
            assert self.call is not None
            scope, receive, send = self.call
            if isinstance(opened, Opened):
                await self._send(opened, send)
            else:
                await opened(scope, receive, send)
        finally:
            self.stop = None
            watcher, self.watcher = self.watcher, None
            if watcher is not None:
                watcher.cancel()  # the response is done (or will never be): the call ends

    async def _send(self, opened: Opened, send: Send) -> None:
        self.frames = opened.frames
        self.on_close = opened.on_close
        headers = opened.headers
        if isinstance(headers, list):
            self.raw_headers = headers
        else:
            self.init_headers({**SSE_HEADERS, **headers})
        relaying = _scope_class()()
        self.stop = relaying.cancel
        try:
            with relaying:
                body = self.frames
                try:  # `async with aclosing(body)`, without its two coroutines before the first event
                    await self._relay(body, send, _nothing)
                finally:
                    await body.aclose()
        except OSError:
            logger.debug("client went away during a stream")  # see `EventStreamResponse._stream`
        finally:
            self.stop = None
            if self.on_close is not None:
                await shielded(self.on_close())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        opening = self.opening
        assert opening is not None, "made by `start`"
        self.call = scope, receive, send
        if self.served is not None and not self.served.done():
            self.served.set_result(None)
        if not opening.done():
            await self._watch(receive)
        if not opening.done():  # the client left, or the server said the response was done: its cleanup ends it
            await asyncio.shield(opening)
        if not opening.cancelled():
            opening.result()  # an error it ended with (a bug) is the call's

    async def _watch(self, receive: Receive) -> None:
        """Wait in `receive()` until the client leaves (then stop the opening task) or the opening task ends (it
        cancels this wait then)."""
        task = asyncio.current_task()
        self.watcher = task
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            if self.watcher is None and task is not None and task.uncancel() == 0:
                return  # woken by the opening task's end, and by nothing else
            self._leave()  # the server cancelled the call
            raise
        except Exception:
            logger.exception("waiting for a stream's client to leave failed; the stream is ended")
        finally:
            self.watcher = None
        self._leave()

    def _leave(self) -> None:
        self.left = True
        stop, self.stop = self.stop, None
        if stop is not None:
            stop()


@functools.cache
def _scope_class() -> type[anyio.CancelScope]:
    """The running backend's own `CancelScope` class (asyncio's: this module runs on asyncio only), to make a scope
    with: `anyio.CancelScope()` asks sniffio which library runs and looks its backend up on every call, some 12,000
    instructions of the 30,000 a scope costs, on a stream's way to its first event."""
    return type(anyio.CancelScope())


def _nothing() -> None:
    """`_relay`'s `waiting` when the call's own task already waits for the client to leave."""


async def _close_unsent(opened: Opened | Response) -> None:
    """What was opened for a client that has left: its stream closed, or its answer run to nowhere (what runs after
    an answer is sent, its audit record, still runs)."""
    if isinstance(opened, Opened):
        await opened.frames.aclose()
        if opened.on_close is not None:
            await opened.on_close()
    else:
        await opened({"type": "http"}, _never_receives, _unsent)


async def _never_receives() -> Message:
    raise RuntimeError("an answer to a client that left reads nothing")


async def _unsent(message: Message) -> None:
    """A `send` for an answer whose client has left: it goes nowhere, and what runs after it still runs."""


async def _cancel_on_disconnect(receive: Receive, streaming: anyio.CancelScope) -> None:
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:
        logger.exception("waiting for a stream's client to leave failed; the stream is ended")
    streaming.cancel()
