"""`total_timeout` of a stream with one timer for all streams: only a wait on the provider is cut short, as aiohttp's
own timer cuts it; the work a stream's task does between reads never is; a read past the deadline still gets what
was buffered; a cancellation from elsewhere is not taken for the timeout; a stream that ends leaves nothing behind."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from llm_proxy.errors import UpstreamUnavailable
from llm_proxy.stream_timeout import StreamDeadline, StreamTimeouts
from llm_proxy.upstream import Upstream
from tests.llm_proxy.test_total_timeout import TOTAL, Handler, provider

pytestmark = pytest.mark.anyio


def events(count: int, gap: float, finished: asyncio.Event) -> Handler:
    """`count` events `gap` seconds apart, then the end, or nothing more until `finished` when `count` is 0."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for index in range(count):
            await response.write(b"data: %d\n\n" % index)
            await asyncio.sleep(gap)
        if not count:
            await response.write(b"data: 0\n\n")
            await finished.wait()
        return response

    return handler


def running(upstream: Upstream) -> int:
    assert upstream._streams is not None
    return len(upstream._streams._running)


async def test_work_between_reads_is_never_cut_short_and_a_read_past_the_deadline_gets_what_was_buffered() -> None:
    finished = asyncio.Event()
    received: list[bytes] = []
    async with provider(events(0, 0, finished), finished) as (upstream, url):
        with pytest.raises(UpstreamUnavailable) as failed:
            async for chunk in upstream.post_stream("p", url, {}, {"stream": True}):
                received.append(chunk)
                await asyncio.sleep(0.5)  # the client's send, say: past the deadline, and not cancelled
        assert running(upstream) == 0
    # The event that came before the deadline was read; the read that would then have waited timed out.
    assert received == [b"data: 0\n\n"]
    assert failed.value.message == TOTAL
    assert isinstance(failed.value.__cause__, TimeoutError)


async def test_a_wait_under_way_at_the_deadline_times_out() -> None:
    finished = asyncio.Event()
    async with provider(events(0, 0, finished), finished) as (upstream, url):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamUnavailable) as failed:
            async for _ in upstream.post_stream("p", url, {}, {"stream": True}):
                pass
        assert loop.time() - started < 5  # the deadline, not the read timeout (30 s)
        assert running(upstream) == 0
    assert failed.value.message == TOTAL


async def test_streams_within_the_total_are_untouched_and_leave_nothing_behind() -> None:
    finished = asyncio.Event()
    async with provider(events(3, 0.01, finished), finished) as (upstream, url):

        async def whole() -> bytes:
            return b"".join([chunk async for chunk in upstream.post_stream("p", url, {}, {"stream": True})])

        bodies = await asyncio.gather(*(whole() for _ in range(5)))
        assert running(upstream) == 0
        await asyncio.sleep(0.4)  # past every one of their deadlines: the timer finds none running
        assert await whole() == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"  # a later one re-arms it
        assert running(upstream) == 0
    assert bodies == [b"data: 0\n\ndata: 1\n\ndata: 2\n\n"] * 5


async def test_a_cancellation_from_elsewhere_is_not_taken_for_the_timeout() -> None:
    finished = asyncio.Event()
    async with provider(events(0, 0, finished), finished) as (upstream, url):

        async def read() -> None:
            async for _ in upstream.post_stream("p", url, {}, {"stream": True}):
                pass

        reading = asyncio.ensure_future(read())
        await asyncio.sleep(0.05)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert running(upstream) == 0


@pytest.mark.parametrize(("elsewhere", "outcome"), [(False, "timeout"), (True, "cancelled")])
async def test_a_wait_cancelled_from_elsewhere_as_its_deadline_comes_goes_on_being_cancelled(
    elsewhere: bool, outcome: str
) -> None:
    timeouts = StreamTimeouts(asyncio.get_running_loop(), 30, ceil_threshold=5)
    deadline = StreamDeadline()
    seen: list[str] = []

    async def read() -> None:
        deadline.wait()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("timeout" if deadline.is_timeout() else "cancelled")

    timeouts.enter(deadline)
    reading = asyncio.ensure_future(read())
    await asyncio.sleep(0)  # waiting
    if elsewhere:
        reading.cancel()  # asked for by someone else, in the same turn of the loop as the deadline
    deadline.expire()  # what the timer does when the deadline comes
    await reading
    timeouts.leave(deadline)
    timeouts.close()
    assert seen == [outcome]
