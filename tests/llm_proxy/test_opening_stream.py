"""`OpeningEventStream`: a stream's response made while its provider is asked, which opens and relays the stream in a
task of its own; a client that leaves before the first item cancels the opening, once, and nothing opened is left
behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import pytest
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llm_proxy.pipeline import Exchange
from llm_proxy.streaming import Opened, OpeningEventStream, event_stream_head
from tests.llm_proxy.test_event_stream import Client, serve

pytestmark = pytest.mark.anyio


async def two_frames() -> AsyncGenerator[bytes, None]:
    yield b"data: 1\n\n"
    yield b"data: [DONE]\n\n"


class Answer(Response):
    """An answer sent instead of a stream, noting what ran after it was sent (as `ThenFinish` does)."""

    def __init__(self, status: int, events: list[str]) -> None:
        super().__init__(b'{"error": {}}', status_code=status, media_type="application/json")
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.events.append("answer finished")


async def test_open_runs_to_its_first_wait_before_the_response_is_made_then_its_stream_is_relayed() -> None:
    events: list[str] = []
    provider_answered = anyio.Event()

    async def open() -> Opened:
        events.append("provider asked")
        await provider_answered.wait()
        return Opened(two_frames(), {"x-isthmus-route": "mock/m"})

    response = await OpeningEventStream.start(open)
    assert events == ["provider asked"]  # before the handler returned the response
    client = Client()
    async with anyio.create_task_group() as group:
        group.start_soon(serve, response, client)
        await anyio.sleep(0.01)
        assert client.messages == []  # no headers before the stream is open: its status may still be an error
        provider_answered.set()
    start = client.messages[0]
    assert start["status"] == 200 and (b"x-isthmus-route", b"mock/m") in start["headers"]
    assert (b"cache-control", b"no-cache") in start["headers"]
    assert client.bodies() == [b"data: 1\n\n", b"data: [DONE]\n\n"]


async def test_a_head_made_raw_from_the_exchange_sends_what_its_headers_mapping_sends() -> None:
    exchange = Exchange("req-1", "openai", "chat")
    exchange.trace.attempts = 2
    exchange.trace.route = "mock/m"
    sent: list[list[tuple[bytes, bytes]]] = []
    for head in (exchange.headers(), event_stream_head(exchange.raw_headers())):

        async def open(head: Any = head) -> Opened:
            return Opened(two_frames(), head)

        client = Client()
        await serve(await OpeningEventStream.start(open), client)
        sent.append(client.messages[0]["headers"])
    assert sent[0] == sent[1]
    assert sent[1] == [
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        (b"x-request-id", b"req-1"),
        (b"x-isthmus-attempts", b"2"),
        (b"x-isthmus-route", b"mock/m"),
        (b"content-type", b"text/event-stream; charset=utf-8"),
    ]


async def test_a_stream_open_before_the_server_calls_the_response_is_sent_when_it_does() -> None:
    async def open() -> Opened:
        return Opened(two_frames(), {})  # a provider quicker than the framework

    response = await OpeningEventStream.start(open)
    assert response.opening is not None and not response.opening.done()  # waiting for the call, holding it
    client = Client()
    with anyio.fail_after(5):
        await serve(response, client)
    assert client.bodies() == [b"data: 1\n\n", b"data: [DONE]\n\n"]


async def test_an_answer_instead_of_a_stream_is_sent_as_it_is() -> None:
    events: list[str] = []

    async def open() -> Response:
        await anyio.sleep(0)
        return Answer(429, events)

    client = Client()
    with anyio.fail_after(5):
        await serve(await OpeningEventStream.start(open), client)
    assert client.messages[0]["status"] == 429
    assert client.bodies() == [b'{"error": {}}']
    assert events == ["answer finished"]


async def test_a_client_leaving_while_it_opens_cancels_open_once_and_its_cleanup_runs_to_its_end() -> None:
    events: list[str] = []
    cleaned = anyio.Event()

    async def open() -> Opened:
        try:
            await anyio.sleep_forever()  # the provider thinks
        except BaseException:
            events.append("open cancelled")
            # Cleanup that awaits (releasing a reservation in Redis): not cancelled again half way.
            for _ in range(3):
                await anyio.sleep(0)
            events.append("open cleaned up")
            cleaned.set()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    client = Client()
    async with anyio.create_task_group() as group:
        group.start_soon(serve, await OpeningEventStream.start(open), client)
        with anyio.fail_after(5):
            await anyio.sleep(0.01)
            client.gone.set()
            await cleaned.wait()
    assert events == ["open cancelled", "open cleaned up"]
    assert client.messages == []


def sink() -> tuple[list[Any], Any]:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    return sent, send


async def never_leaves() -> dict[str, Any]:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


async def test_the_stream_is_relayed_by_the_task_that_read_its_first_item() -> None:
    # The first event goes out in the step that read it: the call's task, waiting for the client to leave, is not
    # woken for it (a loop step on the way to what a streaming client waits on).
    senders: list[asyncio.Task[Any] | None] = []

    async def open() -> Opened:
        await anyio.sleep(0)
        return Opened(two_frames(), {})

    response = await OpeningEventStream.start(open)

    async def send(message: Any) -> None:
        senders.append(asyncio.current_task())

    with anyio.fail_after(5):
        await response({"type": "http"}, never_leaves, send)
    assert len(senders) == 3 and set(senders) == {response.opening}


async def test_a_call_cancelled_while_its_stream_is_relayed_stops_it_and_its_cleanup_runs_to_its_end() -> None:
    # The server cancels the call (it shuts down) while the provider is silent mid-stream.
    events: list[str] = []
    closed = anyio.Event()

    async def frames() -> AsyncGenerator[bytes, None]:
        yield b"data: 1\n\n"
        try:
            await anyio.sleep_forever()
        finally:
            events.append("stream closed")
        yield b"data: 2\n\n"  # pragma: no cover

    async def on_close() -> None:
        for _ in range(3):  # cleanup that awaits (settling in Redis): not cancelled half way
            await anyio.sleep(0)
        events.append("on_close")
        closed.set()

    async def open() -> Opened:
        await anyio.sleep(0)
        return Opened(frames(), {}, on_close)

    response = await OpeningEventStream.start(open)
    sent, send = sink()
    host = asyncio.ensure_future(response({"type": "http"}, never_leaves, send))
    with anyio.fail_after(5):
        while len(sent) < 2:  # the headers and the first event
            await anyio.sleep(0)
        host.cancel()
        await closed.wait()
        await asyncio.wait((host,))
    assert host.cancelled()
    assert events == ["stream closed", "on_close"] and len(sent) == 2


async def test_a_stream_opened_after_its_call_was_cancelled_is_closed_by_the_opening_task() -> None:
    # An opener that does not let the cancellation through (a library swallowing it) and opens anyway.
    events: list[str] = []
    closed = anyio.Event()

    async def on_close() -> None:
        events.append("on_close")
        closed.set()

    async def open() -> Opened:
        try:
            await anyio.sleep(0.02)
        except asyncio.CancelledError:
            events.append("cancellation swallowed")
        return Opened(two_frames(), {}, on_close)

    response = await OpeningEventStream.start(open)
    sent, send = sink()
    host = asyncio.ensure_future(response({"type": "http"}, never_leaves, send))
    await asyncio.sleep(0)  # the call waits for the opening
    host.cancel()
    with anyio.fail_after(5):
        await closed.wait()
    assert events == ["cancellation swallowed", "on_close"] and sent == []


async def test_a_response_never_served_cancels_its_opening() -> None:
    cancelled = anyio.Event()

    async def open() -> Opened:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")  # pragma: no cover

    response = await OpeningEventStream.start(open)

    async def stuck_send(message: Any) -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        with anyio.move_on_after(0.01):  # the server gives up on the request (shutting down)
            await response({"type": "http"}, never_leaves, stuck_send)
        await cancelled.wait()


async def test_an_opener_that_breaks_makes_the_call_raise_its_error() -> None:
    async def open() -> Opened:
        await anyio.sleep(0)
        raise ValueError("a bug in the opener")

    response = await OpeningEventStream.start(open)
    sent, send = sink()
    with anyio.fail_after(5), pytest.raises(ValueError, match="a bug in the opener"):
        await response({"type": "http"}, never_leaves, send)
    assert sent == []
