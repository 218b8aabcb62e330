"""The stack's floor: a raw ASGI app on uvicorn (uvloop, httptools) that forwards each request with one pooled
aiohttp client and no logic at all.

It runs on the same server, event loop and HTTP client as the gateway, so the gateway's figures as a share of
this one's show the cost of its own logic apart from the cost of the stack. `/mcp...` goes to the MCP upstream,
everything else to the LLM upstream; bodies and streamed answers are passed through as they come.

    python -m bench.passthrough --port 18100 --llm http://127.0.0.1:18080 --mcp http://127.0.0.1:18090 [--workers 2]

With `--workers N` it runs as `isthmus serve --workers N` does (`isthmus.workers`: uvicorn's supervisor, a
`SO_REUSEPORT` socket per worker), so a gateway's scaling can be set beside the floor's.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import aiohttp
import uvicorn
from starlette.types import Receive, Scope, Send

FORWARDED = frozenset({"content-type", "accept", "authorization", "mcp-session-id", "mcp-protocol-version"})
RETURNED = frozenset({"content-type", "mcp-session-id", "cache-control"})


class PassThrough:
    """The ASGI app; its lifespan opens and closes the one client session."""

    def __init__(self, llm: str, mcp: str) -> None:
        self.llm = llm.rstrip("/")
        self.mcp = mcp.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self.session is not None
        path: str = scope["path"]
        base = self.mcp if path.startswith("/mcp") else self.llm
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name.decode("latin-1") in FORWARDED
        }
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        async with self.session.request(scope["method"], base + path, data=body, headers=headers) as upstream:
            out = [(k.lower().encode(), v.encode()) for k, v in upstream.headers.items() if k.lower() in RETURNED]
            await send({"type": "http.response.start", "status": upstream.status, "headers": out})
            async for piece in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=512, limit_per_host=0)
                self.session = aiohttp.ClientSession(connector=connector, trust_env=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


UPSTREAMS_ENV = "BENCH_PASSTHROUGH_UPSTREAMS"


def from_env() -> PassThrough:
    """The app of one worker (`--workers`): the upstreams come from the environment, `llm mcp`."""
    llm, mcp = os.environ[UPSTREAMS_ENV].split()
    return PassThrough(llm, mcp)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--llm", required=True, help="base URL of the LLM upstream")
    parser.add_argument("--mcp", required=True, help="base URL of the MCP upstream")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"host": "127.0.0.1", "port": args.port, "loop": "uvloop", "http": "httptools"}
    options.update(log_level="warning", access_log=False)
    if args.workers > 1:
        from isthmus import workers

        os.environ[UPSTREAMS_ENV] = f"{args.llm} {args.mcp}"
        config = uvicorn.Config("bench.passthrough:from_env", factory=True, workers=args.workers, **options)
        workers.run(config)
        return
    uvicorn.run(PassThrough(args.llm, args.mcp), **options)


if __name__ == "__main__":
    main()
