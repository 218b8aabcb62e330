"""The fast path's HTTP client of one upstream (`mcp_hub/upstreams/fast_http.py`) under OAuth credentials."""

from __future__ import annotations

import pytest
from aiohttp import web

from mcp_hub.upstreams.fast_http import FastHttp
from tests.mcp_hub.upstreams.web_upstream import upstream

pytestmark = pytest.mark.anyio


class RenewalDown(RuntimeError):
    """The token endpoint could not be reached."""


class Credentials:
    """A bearer that the upstream rejects, and whose renewal fails."""

    async def token(self) -> str | None:
        return "expired"

    async def rejected(self, token: str) -> str | None:
        raise RenewalDown(token)


class RejectsFirst:
    """An upstream that answers its first request 401 and the others 200, noting each request's client port."""

    def __init__(self) -> None:
        self.ports: list[int] = []

    async def answer(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        self.ports.append(request.transport.get_extra_info("peername")[1])
        if len(self.ports) == 1:
            return web.Response(status=401)
        return web.json_response({"jsonrpc": "2.0", "id": 1, "result": {}})


async def test_a_401_whose_token_renewal_fails_gives_its_connection_back_to_the_pool() -> None:
    rejecting = RejectsFirst()
    async with upstream(rejecting.answer) as url:
        fast = FastHttp(url, {}, connect_timeout=5, read_timeout=5, credentials=Credentials())
        try:
            with pytest.raises(RenewalDown):
                await fast.post(b"{}", fast.headers())
            response = await fast.post(b"{}", fast.headers())
            await response.read()
            response.release()
        finally:
            await fast.aclose()
    assert response.status == 200
    assert len(set(rejecting.ports)) == 1  # the second request went on the first's connection, released to the pool
