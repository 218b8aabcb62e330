"""A stream's body is read to its end after OpenAI's `[DONE]`, so that its connection serves the next request; a
body that does not end, or breaks after its last event, still ends the stream with every event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from aiohttp import web

from llm_proxy.providers import base
from llm_proxy.providers.base import sse_json, sse_objects
from llm_proxy.upstream import Upstream
from tests.llm_proxy import one_route
from toolpolicy.settings import LlmSettings

pytestmark = pytest.mark.anyio

EVENTS = [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n', b"data: [DONE]\n\n"]

Tail = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


async def ends_later(request: web.Request, response: web.StreamResponse) -> None:
    await asyncio.sleep(0.05)  # the body's last chunk comes apart from `[DONE]`, in a read of its own
    await response.write_eof()


async def never_ends(request: web.Request, response: web.StreamResponse) -> None:
    await asyncio.sleep(1)  # far past the grace the test sets


async def breaks(request: web.Request, response: web.StreamResponse) -> None:
    assert request.transport is not None
    request.transport.close()


@contextlib.asynccontextmanager
async def provider(tail: Tail) -> AsyncIterator[tuple[Upstream, str, list[object]]]:
    peers: list[object] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in EVENTS:
            await response.write(event)
        await tail(request, response)
        return response

    runner, port = await one_route.serve(stream)
    upstream = Upstream(LlmSettings())
    await upstream.start()
    try:
        yield upstream, f"http://127.0.0.1:{port}/v1/chat/completions", peers
    finally:
        await upstream.close()
        await runner.cleanup()


def _unchecked(item: dict[str, Any]) -> None:
    pass


async def test_a_body_ending_after_done_is_read_and_its_connection_kept() -> None:
    async with provider(ends_later) as (upstream, url, peers):
        for _ in range(2):
            items = [item async for item in sse_objects("p", upstream.post_stream("p", url, {}, {}), _unchecked)]
            assert items == [{"n": 1}, {"n": 2}]
    assert len(peers) == 2 and peers[0] == peers[1]  # the connection went back to the pool after each stream


async def test_sse_json_reads_the_body_to_its_end_too() -> None:
    async with provider(ends_later) as (upstream, url, peers):
        for _ in range(2):
            events = [event async for event in sse_json("p", upstream.post_stream("p", url, {}, {}))]
            assert events == [(None, {"n": 1}), (None, {"n": 2})]
    assert len(peers) == 2 and peers[0] == peers[1]


@pytest.mark.parametrize("tail", [never_ends, breaks])
async def test_a_body_that_does_not_end_after_done_still_ends_the_stream(
    tail: Tail, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "BODY_END_GRACE", 0.05)
    async with provider(tail) as (upstream, url, peers):
        with anyio.fail_after(10):  # a guard against a hang: the grace is 0.05 s
            items = [item async for item in sse_objects("p", upstream.post_stream("p", url, {}, {}), _unchecked)]
    assert items == [{"n": 1}, {"n": 2}]
