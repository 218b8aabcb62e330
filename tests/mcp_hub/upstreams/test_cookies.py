"""Upstream clients that serve many keys under each key's own token keep no cookies: one an upstream set in answer
to one key's request never goes with another key's. Clients of one shared identity keep them (a load balancer's
affinity cookie)."""

from __future__ import annotations

import httpx2
import pytest
from aiohttp import web

from mcp_hub.upstreams.fast_http import FastHttp
from mcp_hub.upstreams.http import without_cookies
from tests.mcp_hub.upstreams.web_upstream import upstream

pytestmark = pytest.mark.anyio


class CookieSetter:
    """An upstream that sets a cookie on every answer and notes the cookie each request came with."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    async def answer(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers.get("cookie"))
        response = web.json_response({"jsonrpc": "2.0", "id": 1, "result": {}})
        response.set_cookie("session", "set-for-the-first-caller", path="/")
        return response


@pytest.mark.parametrize(("keep_cookies", "second"), [(False, None), (True, "session=set-for-the-first-caller")])
async def test_the_fast_paths_client_keeps_cookies_only_for_one_shared_identity(
    keep_cookies: bool, second: str | None
) -> None:
    setter = CookieSetter()
    async with upstream(setter.answer) as url:
        fast = FastHttp(url, {}, connect_timeout=5, read_timeout=5, keep_cookies=keep_cookies)
        try:
            for _ in range(2):
                response = await fast.post(b"{}", fast.headers())
                await response.read()
                response.release()
        finally:
            await fast.aclose()
    assert setter.seen == [None, second]


@pytest.mark.parametrize(("cookieless", "second"), [(True, None), (False, "session=set-for-the-first-caller")])
async def test_the_sdk_client_each_keys_token_goes_through_keeps_no_cookies(
    cookieless: bool, second: str | None
) -> None:
    setter = CookieSetter()
    async with upstream(setter.answer) as url:
        client = httpx2.AsyncClient()
        if cookieless:
            client = without_cookies(client)
        async with client:
            for _ in range(2):
                (await client.post(url, content=b"{}")).raise_for_status()
    assert setter.seen == [None, second]
