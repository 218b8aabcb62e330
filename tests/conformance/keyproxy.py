"""A reverse proxy that adds a virtual key to every request and changes nothing else.

The conformance suite (0.2.0-alpha.12) has no header or auth option in server mode, and its scenarios reach the
server through three HTTP clients (the SDK transport's fetch, undici, node:http), so the key cannot be injected in
the harness. The hub answers any request without a key with 401. This proxy sits between the two: it forwards the
method, path, query, headers (Host and Origin included, so the hub's DNS-rebinding checks see what the suite sent)
and body, sets `Authorization: Bearer <key>`, and streams the answer back as it arrives (SSE included). A client
that disconnects cancels the forwarded request.

    CONFORMANCE_KEY=isk-... python -m tests.conformance.keyproxy --port 18300 --target http://127.0.0.1:18200
"""

from __future__ import annotations

import argparse
import asyncio
import os

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

KEY_ENV = "CONFORMANCE_KEY"
# RFC 9110 7.6.1: these describe one connection, not the message.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"}
    | {"upgrade"}
)
# Framing aiohttp redoes on each side.
REFRAMED = frozenset({"content-length"})


def forwarded_request_headers(raw: tuple[tuple[bytes, bytes], ...], key: str) -> CIMultiDict[str]:
    """The client's headers as sent, minus hop-by-hop ones and any credentials, plus the key."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in raw:
        text = name.decode("latin-1")
        if text.lower() not in HOP_BY_HOP | REFRAMED | {"authorization", "x-api-key"}:
            headers.add(text, value.decode("latin-1"))
    headers["Authorization"] = f"Bearer {key}"
    return headers


class KeyProxy:
    """The proxy's handler and its one pooled client."""

    def __init__(self, target: str, key: str) -> None:
        self.target = target.rstrip("/")
        self.key = key
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        # No timeouts: an SSE stream stays open as long as the client keeps it; no decompression: bytes pass as is.
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None), auto_decompress=False
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        assert self.session is not None
        body = await request.read()
        async with self.session.request(
            request.method,
            self.target + request.raw_path,
            headers=forwarded_request_headers(request.raw_headers, self.key),
            data=body if body else None,
            # Only what the client sent goes out: no User-Agent, Accept or Content-Type of aiohttp's own.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.raw_headers:
                text = name.decode("latin-1")
                if text.lower() not in HOP_BY_HOP | REFRAMED:
                    response.headers.add(text, value.decode("latin-1"))
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for piece in upstream.content.iter_any():
                await response.write(piece)
            await response.write_eof()
            return response


async def serve(port: int, target: str, key: str) -> None:
    proxy = KeyProxy(target, key)
    await proxy.open()
    runner = web.ServerRunner(web.Server(proxy.handle, handler_cancellation=True), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="base URL the paths are appended to")
    args = parser.parse_args()
    key = os.environ.get(KEY_ENV)
    if not key:
        parser.error(f"set {KEY_ENV} to the virtual key to add")
    asyncio.run(serve(args.port, args.target, key))


if __name__ == "__main__":
    main()
