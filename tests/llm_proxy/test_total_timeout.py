"""`total_timeout` of a whole answer with one timer for all requests: a request over its total fails as aiohttp's own
total timeout makes it fail, one within it is untouched, and a cancellation from elsewhere is not taken for it."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest
from aiohttp import web

from llm_proxy.errors import UpstreamUnavailable
from llm_proxy.total_timeout import TotalTimeouts
from llm_proxy.upstream import Upstream
from tests.llm_proxy import one_route
from toolpolicy.settings import LlmSettings

pytestmark = pytest.mark.anyio

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOTAL = "provider 'p' took longer than total_timeout (0.3 s)"


@contextlib.asynccontextmanager
async def provider(handler: Handler, finished: asyncio.Event) -> AsyncIterator[tuple[Upstream, str]]:
    runner, port = await one_route.serve(handler)
    upstream = Upstream(LlmSettings(total_timeout=0.3, read_timeout=30))
    await upstream.start()
    try:
        with anyio.fail_after(10):
            yield upstream, f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        finished.set()
        await upstream.close()
        await runner.cleanup()


def never_answers(finished: asyncio.Event) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        await finished.wait()
        return web.json_response({"choices": []})

    return handler


def trickles(finished: asyncio.Event) -> Handler:
    """A head, then a byte of the body every 50 ms: never silent for the read timeout, never done."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/json"})
        response.content_length = 10_000
        await response.prepare(request)
        while not finished.is_set():
            await response.write(b" ")
            await asyncio.sleep(0.05)
        return response

    return handler


@pytest.mark.parametrize("stall", [never_answers, trickles])
async def test_a_whole_answer_over_the_total_fails_as_aiohttps_own_total_timeout_fails_a_stream(
    stall: Callable[[asyncio.Event], Handler],
) -> None:
    finished = asyncio.Event()
    async with provider(stall(finished), finished) as (upstream, url):
        with pytest.raises(UpstreamUnavailable) as whole:
            await upstream.post_json("p", url, {}, {})
        # The stream has a timer of its own (`stream_timeout`): the same failure, the same words.
        with pytest.raises(UpstreamUnavailable) as streamed:
            async for _ in upstream.post_stream("p", url, {}, {"stream": True}):
                pass
        assert upstream._totals is not None and not upstream._totals._running
    assert whole.value.message == streamed.value.message == TOTAL
    assert isinstance(whole.value.__cause__, TimeoutError)


async def test_answers_within_the_total_are_untouched_and_leave_nothing_behind() -> None:
    finished = asyncio.Event()

    async def quick(request: web.Request) -> web.StreamResponse:
        return web.json_response({"choices": [], "n": int((await request.json())["n"])})

    async with provider(quick, finished) as (upstream, url):
        answers = await asyncio.gather(*(upstream.post_json("p", url, {}, {"n": n}) for n in range(20)))
        await asyncio.sleep(0.4)  # past every one of their deadlines: the timer finds none running
        assert [body["n"] for body, _ in answers] == list(range(20))
        assert (await upstream.post_json("p", url, {}, {"n": 20}))[0]["n"] == 20  # a later one re-arms it
        assert upstream._totals is not None and not upstream._totals._running


async def test_a_cancellation_from_elsewhere_is_not_taken_for_the_timeout() -> None:
    finished = asyncio.Event()
    async with provider(never_answers(finished), finished) as (upstream, url):
        request = asyncio.ensure_future(upstream.post_json("p", url, {}, {}))
        await asyncio.sleep(0.05)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        assert upstream._totals is not None and not upstream._totals._running


async def test_a_task_already_being_cancelled_goes_on_being_cancelled_when_its_deadline_also_comes() -> None:
    timeouts = TotalTimeouts(asyncio.get_running_loop(), 0.05, ceil_threshold=5)
    outcome: list[str] = []

    async def request() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # asked for by someone else, before the request starts
        cancelling = task.cancelling()
        timeouts.enter(task)
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            outcome.append("timeout" if timeouts.timed_out(task, cancelling) else "cancelled")
            raise
        finally:
            timeouts.leave(task)

    task = asyncio.ensure_future(request())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == ["cancelled"]


async def test_deadlines_are_timed_out_oldest_first_by_one_timer() -> None:
    loop = asyncio.get_running_loop()
    timeouts = TotalTimeouts(loop, 0.1, ceil_threshold=5)
    order: list[int] = []
    release = asyncio.Event()

    async def request(index: int, finishes: bool) -> None:
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        timeouts.enter(task)
        try:
            if finishes:
                return
            await release.wait()
        except asyncio.CancelledError:
            if timeouts.timed_out(task, cancelling):
                order.append(index)
                return
            raise
        finally:
            timeouts.leave(task)

    first = asyncio.ensure_future(request(0, finishes=False))
    await asyncio.sleep(0.03)
    done = asyncio.ensure_future(request(1, finishes=True))
    second = asyncio.ensure_future(request(2, finishes=False))
    with anyio.fail_after(5):
        await asyncio.gather(first, done, second)
    assert order == [0, 2]
    assert not timeouts._running
    timeouts.close()


async def test_a_total_from_the_threshold_on_is_rounded_up_to_a_whole_second_as_aiohttp_rounds_it() -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for seconds in (5.0, 4.5):
        timeouts = TotalTimeouts(loop, seconds, ceil_threshold=5)
        earliest = loop.time() + seconds
        timeouts.enter(task)
        when = timeouts._running[task]
        timeouts.leave(task)
        timeouts.close()
        assert when is not None
        if seconds >= 5:
            assert when == math.ceil(earliest) or when == math.ceil(loop.time() + seconds)
        else:
            assert earliest <= when <= loop.time() + seconds
