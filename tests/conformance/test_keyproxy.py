"""The key proxy in front of the hub adds the key and otherwise passes requests and streamed answers unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.conformance.keyproxy import KeyProxy

pytestmark = pytest.mark.anyio

KEY = "isk-conformance-test"


class Upstream:
    """Records what arrives; `/stream` sends one event, then the next only when the test has seen the first."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[tuple[str, str]], bytes]] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        headers = [(name.decode(), value.decode()) for name, value in request.raw_headers]
        self.seen.append((request.method, request.raw_path, headers, await request.read()))
        if request.path != "/stream":
            return web.Response(status=421, text="bad host", headers={"Mcp-Session-Id": "s-1"})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await self.release.wait()
        await response.write(b"data: second\n\n")
        await response.write_eof()
        return response


async def _site(handler: web.Server) -> AsyncIterator[str]:
    runner = web.ServerRunner(handler, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def stack() -> AsyncIterator[tuple[Upstream, str]]:
    upstream = Upstream()
    async for target in _site(web.Server(upstream.handle)):
        proxy = KeyProxy(target, KEY)
        await proxy.open()
        try:
            async for url in _site(web.Server(proxy.handle, handler_cancellation=True)):
                yield upstream, url
        finally:
            await proxy.close()


async def test_the_key_replaces_any_credentials_and_everything_else_passes_as_sent(
    stack: tuple[Upstream, str],
) -> None:
    upstream, url = stack
    headers = {"Host": "evil.example.com", "Origin": "http://evil.example.com", "Authorization": "Bearer theirs"}
    headers |= {"X-Api-Key": "theirs", "Content-Type": "application/json"}
    headers |= {"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"}
    async with (
        aiohttp.ClientSession(skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding")) as client,
        client.post(f"{url}/mcp/conformance?x=1", data=b'{"jsonrpc": "2.0"}', headers=headers) as answer,
    ):
        assert answer.status == 421
        assert answer.headers["Mcp-Session-Id"] == "s-1"
        assert await answer.text() == "bad host"
    method, path, sent, body = upstream.seen[0]
    assert (method, path, body) == ("POST", "/mcp/conformance?x=1", b'{"jsonrpc": "2.0"}')
    assert {name.lower(): value for name, value in sent} == {
        "host": "evil.example.com",
        "origin": "http://evil.example.com",
        "content-type": "application/json",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "authorization": f"Bearer {KEY}",
        "content-length": "18",
    }


async def test_a_streamed_answer_arrives_piece_by_piece(stack: tuple[Upstream, str]) -> None:
    upstream, url = stack
    async with aiohttp.ClientSession() as client, client.get(f"{url}/stream") as answer:
        assert answer.headers["Content-Type"] == "text/event-stream"
        # Buffering the answer would wait for the second event, which waits for us: the timeout would fire.
        try:
            first = await asyncio.wait_for(answer.content.readuntil(b"\n\n"), timeout=10)
        finally:
            upstream.release.set()
        assert first == b"data: first\n\n"
        assert await answer.content.read() == b"data: second\n\n"
