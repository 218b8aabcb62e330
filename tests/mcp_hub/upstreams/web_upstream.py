"""An upstream for the HTTP clients' tests: an aiohttp app answering `POST /mcp` as a test scripts it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Answer = Callable[[web.Request], Awaitable[web.Response]]


@asynccontextmanager
async def upstream(answer: Answer) -> AsyncIterator[str]:
    """`answer` serving `POST /mcp` on a free port, and its URL while it runs."""
    app = web.Application()
    app.router.add_post("/mcp", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        # A host name, not an address: cookie jars keep no cookies for IP addresses, and would keep these.
        yield f"http://localhost:{runner.addresses[0][1]}/mcp"
    finally:
        await runner.cleanup()
