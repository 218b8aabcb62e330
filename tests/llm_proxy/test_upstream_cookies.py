"""The provider pool keeps no cookies: what a provider sets in answer to one caller's request never goes with
another's."""

from __future__ import annotations

import pytest
from aiohttp import web

from llm_proxy.upstream import Upstream
from tests.llm_proxy import one_route
from toolpolicy.settings import LlmSettings

pytestmark = pytest.mark.anyio


async def test_a_cookie_a_provider_sets_is_not_sent_with_later_requests() -> None:
    seen: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("cookie"))
        response = web.json_response({"ok": True})
        response.set_cookie("__cf_bm", "first-callers-cookie", path="/", max_age=1800)
        return response

    runner, port = await one_route.serve(answer)
    upstream = Upstream(LlmSettings())
    await upstream.start()
    try:
        # A host name, not an address: aiohttp's default jar keeps no cookies for IP addresses, and would keep these.
        url = f"http://localhost:{port}/v1/chat/completions"
        for _ in range(2):
            body, _raw = await upstream.post_json("p", url, {}, {"model": "m"})
            assert body == {"ok": True}
    finally:
        await upstream.close()
        await runner.cleanup()
    assert seen == [None, None]
