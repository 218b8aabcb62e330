"""A provider's whole answer is read, whether its body came with its head or after it, and the size cap holds."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from llm_proxy.errors import UpstreamBadResponse
from llm_proxy.upstream import Upstream
from tests.llm_proxy import one_route
from toolpolicy.settings import LlmSettings

pytestmark = pytest.mark.anyio

ANSWER = {"choices": [{"message": {"content": "word " * 400}}]}
RAW = json.dumps(ANSWER).encode()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def with_head(request: web.Request) -> web.StreamResponse:
    return web.Response(body=RAW, content_type="application/json")


async def after_head(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "application/json"})
    response.content_length = len(RAW)
    await response.prepare(request)
    for start in range(0, len(RAW), 500):  # the body in pieces, each after a pause
        await asyncio.sleep(0.01)
        await response.write(RAW[start : start + 500])
    await response.write_eof()
    return response


async def compressed(request: web.Request) -> web.StreamResponse:
    body = gzip.compress(RAW)
    return web.Response(body=body, headers={"content-type": "application/json", "content-encoding": "gzip"})


@contextlib.asynccontextmanager
async def answered(handler: Handler, **settings: int) -> AsyncIterator[tuple[Upstream, str]]:
    runner, port = await one_route.serve(handler)
    upstream = Upstream(LlmSettings(**settings))  # type: ignore[arg-type]
    await upstream.start()
    try:
        yield upstream, f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        await upstream.close()
        await runner.cleanup()


@pytest.mark.parametrize("handler", [with_head, after_head, compressed])
async def test_the_whole_answer_is_read_twice_over_one_kept_connection(handler: Handler) -> None:
    peers: list[object] = []

    async def noting_peer(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return await handler(request)

    async with answered(noting_peer) as (upstream, url):
        for _ in range(2):
            assert await upstream.post_json("p", url, {}, {}) == (ANSWER, RAW)
    assert len(peers) == 2 and peers[0] == peers[1]  # the connection went back to the pool after each answer


@pytest.mark.parametrize("handler", [with_head, after_head])
async def test_an_answer_over_the_size_cap_is_refused(handler: Handler) -> None:
    async with answered(handler, max_response_bytes=1024) as (upstream, url):
        with pytest.raises(UpstreamBadResponse, match=r"answered \d+ bytes \(limit 1024\)"):
            await upstream.post_json("p", url, {}, {})
