"""`read_timeout` with one timer per silence: reads move the deadline, the timer re-arms for what is left of it,
and a provider silent for the whole timeout fails as aiohttp's own timer would make it fail."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from llm_proxy.errors import UpstreamUnavailable
from llm_proxy.read_timeout import LazyReadTimeout
from llm_proxy.upstream import Upstream
from tests.llm_proxy import one_route
from toolpolicy.settings import LlmSettings

pytestmark = pytest.mark.anyio


class FakeLoop:
    """The two calls the protocol's timer makes, on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        self.timers.append(timer)
        return timer

    def fire_due(self) -> None:
        for timer in [t for t in self.timers if not t.cancelled and not t.fired and t.when <= self.now]:
            timer.fired = True
            timer.callback()


class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        self.cancelled = True


async def protocol(read_timeout: float) -> tuple[LazyReadTimeout, FakeLoop]:
    handler = LazyReadTimeout(loop=asyncio.get_running_loop())
    fake = FakeLoop()
    handler._loop = fake  # type: ignore[assignment]
    handler.set_response_params(read_timeout=read_timeout)
    return handler, fake


async def test_reads_move_the_deadline_without_a_timer_each() -> None:
    handler, loop = await protocol(read_timeout=10)
    handler.start_timeout()
    for second in range(1, 100):
        loop.now = second * 0.5
        handler._reschedule_timeout()  # what each read from the socket does
    assert len(loop.timers) == 1 and loop.timers[0].when == 10
    loop.now = 10
    loop.fire_due()
    assert handler.exception() is None
    assert [timer.when for timer in loop.timers] == [10, 59.5]  # re-armed for the last read's deadline


async def test_a_silence_as_long_as_the_timeout_fails_the_read() -> None:
    handler, loop = await protocol(read_timeout=10)
    handler.start_timeout()
    loop.now = 4
    handler._reschedule_timeout()
    loop.now = 10
    loop.fire_due()
    assert handler.exception() is None
    loop.now = 13.9
    loop.fire_due()
    assert handler.exception() is None
    loop.now = 14
    loop.fire_due()
    assert isinstance(handler.exception(), aiohttp.SocketTimeoutError)


async def test_a_shorter_timeout_is_not_left_to_the_longer_ones_timer() -> None:
    handler, loop = await protocol(read_timeout=10)
    handler.start_timeout()
    handler.set_response_params(read_timeout=2)  # the connection's next response, say
    handler._reschedule_timeout()
    assert loop.timers[0].cancelled and loop.timers[1].when == 2
    loop.now = 2
    loop.fire_due()
    assert isinstance(handler.exception(), aiohttp.SocketTimeoutError)


async def test_a_dropped_timeout_never_fires_and_the_next_response_takes_its_timer_over() -> None:
    handler, loop = await protocol(read_timeout=10)
    handler.start_timeout()
    handler._drop_timeout()  # the payload was read to its end
    loop.now = 5
    handler.start_timeout()  # the kept-alive connection's next response: no second timer
    handler._drop_timeout()
    assert len(loop.timers) == 1
    loop.now = 20
    loop.fire_due()
    assert handler.exception() is None and handler._read_timeout_handle is None
    handler.start_timeout()  # after the disarmed timer ran out, the next response starts one
    loop.now = 30
    loop.fire_due()
    assert [timer.when for timer in loop.timers] == [10, 30]
    assert isinstance(handler.exception(), aiohttp.SocketTimeoutError)


async def test_a_connection_that_ends_cancels_its_timer() -> None:
    for end in ("close", "abort", "connection_lost"):
        handler, loop = await protocol(read_timeout=10)
        handler.start_timeout()
        handler._drop_timeout()
        if end == "connection_lost":
            handler.connection_lost(None)
        else:
            handler.transport = FakeTransport()  # type: ignore[assignment]
            getattr(handler, end)()
        assert loop.timers[0].cancelled and handler._read_timeout_handle is None, end


class FakeTransport:
    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> tuple[web.AppRunner, str]:
    runner, port = await one_route.serve(handler)
    return runner, f"http://127.0.0.1:{port}/v1/chat/completions"


@contextlib.asynccontextmanager
async def provider(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], finished: asyncio.Event
) -> AsyncIterator[tuple[Upstream, str]]:
    """The gateway's upstream client (read_timeout 0.2 s) and the URL of `handler`; `finished` lets it end."""
    runner, url = await serve(handler)
    upstream = Upstream(LlmSettings(read_timeout=0.2))
    await upstream.start()
    try:
        yield upstream, url
    finally:
        finished.set()
        await upstream.close()
        await runner.cleanup()


async def test_the_gateways_provider_connections_use_it_and_a_steady_stream_outlives_the_timeout() -> None:
    async def steady(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for index in range(16):  # 0.64 s in all, twice the read timeout, never silent for a seventh of it
            await response.write(f"data: {index}\n\n".encode())
            await asyncio.sleep(0.04)
        await response.write_eof()
        return response

    runner, url = await serve(steady)
    upstream = Upstream(LlmSettings(read_timeout=0.3))
    await upstream.start()
    try:
        async with upstream.session.post(url, data=b"{}") as response:
            assert isinstance(response.connection and response.connection.protocol, LazyReadTimeout)
        received = b"".join([chunk async for chunk in upstream.post_stream("p", url, {}, {"stream": True})])
    finally:
        await upstream.close()
        await runner.cleanup()
    assert received == b"".join(f"data: {index}\n\n".encode() for index in range(16))


async def test_the_second_answer_on_a_kept_alive_connection_is_timed_out_when_it_stalls() -> None:
    finished = asyncio.Event()
    peers: list[object] = []

    async def second_stalls(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        if len(peers) == 1:
            return web.json_response({"choices": []})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: 1\n\n")
        await finished.wait()  # silent until the test is over
        return response

    async with provider(second_stalls, finished) as (upstream, url):
        assert (await upstream.post_json("p", url, {}, {}))[0] == {"choices": []}
        with pytest.raises(UpstreamUnavailable, match="stayed silent longer than read_timeout"):
            async for _ in upstream.post_stream("p", url, {}, {"stream": True}):
                pass
    assert len(peers) == 2 and peers[0] == peers[1]  # the same connection answered both


async def test_a_provider_that_falls_silent_mid_stream_is_timed_out() -> None:
    finished = asyncio.Event()

    async def stalls(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: 1\n\n")
        await asyncio.sleep(0.05)
        await response.write(b"data: 2\n\n")
        await finished.wait()  # silent until the test is over
        return response

    received: list[bytes] = []
    async with provider(stalls, finished) as (upstream, url):
        with pytest.raises(UpstreamUnavailable, match="stayed silent longer than read_timeout"):
            async for chunk in upstream.post_stream("p", url, {}, {"stream": True}):
                received.append(chunk)  # noqa: PERF401 - a comprehension would lose what came before the error
    assert b"".join(received) == b"data: 1\n\ndata: 2\n\n"


class FlowTransport:
    """A transport that notes each pause and resume of its reading."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


async def test_a_resume_without_a_pause_does_nothing_and_one_after_a_pause_resumes_the_parser_and_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, _ = await protocol(read_timeout=10)
    transport = FlowTransport()
    handler.connection_made(transport)  # type: ignore[arg-type]
    handler.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")  # a streamed answer's head
    fed: list[bytes] = []
    monkeypatch.setattr(handler, "data_received", fed.append)
    handler.resume_reading()  # what aiohttp's reader asks for each chunk it hands out
    assert fed == [] and transport.calls == []
    handler.pause_reading()  # the reader's buffer went over its high-water mark
    handler.resume_reading()
    assert fed == [b""] and transport.calls == ["pause", "resume"]  # what the pause held back is parsed


async def test_a_stream_larger_than_the_readers_buffer_is_paused_and_resumed_to_its_end() -> None:
    piece = b"data: " + b"x" * 4090 + b"\n\n"  # 4 KiB events, 2 MiB in all: many times aiohttp's high-water mark

    async def large(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(512):
            await response.write(piece)
        await response.write_eof()
        return response

    runner, url = await serve(large)
    upstream = Upstream(LlmSettings(read_timeout=5))
    await upstream.start()
    paused = 0
    received = 0
    try:
        async with asyncio.timeout(20):
            async for chunk in upstream.post_stream("p", url, {}, {"stream": True}):
                received += len(chunk)
                await asyncio.sleep(0.002)  # a slow consumer: the provider's bytes pile up and reading pauses
                for connection in upstream.session.connector._acquired:  # type: ignore[union-attr]
                    paused += bool(connection._reading_paused)
    finally:
        await upstream.close()
        await runner.cleanup()
    assert received == 512 * len(piece)
    assert paused  # reading was paused on the way, and resumed: the whole body came
