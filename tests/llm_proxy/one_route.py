"""A provider of one route for tests of the upstream client itself: `POST /v1/chat/completions` answered by a given
aiohttp handler on a free loopback port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web


async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> tuple[web.AppRunner, int]:
    """The running server (`cleanup()` it) and its port."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]
