"""`GET /admin/cache` (stats) and `DELETE /admin/cache` (all, `?key=`, `?model=`), behind the admin key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.llm_proxy.cache.conftest import SAME_TEAM_KEY, cache_settings
from tests.llm_proxy.cache.test_exact import chat, chat_body
from tests.llm_proxy.conftest import serve_gateway
from tests.llm_proxy.mock_provider import MockProvider

pytestmark = pytest.mark.anyio
ADMIN = {"authorization": "Bearer admin-secret-for-cache"}


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    provider = MockProvider()
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


async def test_stats_and_clearing_by_key_model_or_all(tmp_path: Path, mock: MockProvider) -> None:
    settings = cache_settings(tmp_path, mock, {}, admin_key="admin-secret-for-cache")
    async with serve_gateway(settings) as gateway, httpx2.AsyncClient(base_url=gateway.url) as http:
        await chat(gateway, chat_body())
        await chat(gateway, chat_body(), key=SAME_TEAM_KEY)
        await chat(gateway, {**chat_body(), "model": "mock/other"})
        await chat(gateway, chat_body())
        stats = (await http.get("/admin/cache", headers=ADMIN)).json()
        assert stats["entries"] == 3 and stats["hits"] == 1 and stats["misses"] == 3
        assert (await http.get("/admin/cache")).status_code == 401
        bad = await http.delete("/admin/cache?team=x", headers=ADMIN)
        assert bad.status_code == 400
        assert (await http.delete("/admin/cache?key=dev-two", headers=ADMIN)).json()["deleted"] == 1
        assert (await http.delete("/admin/cache?model=mock/other", headers=ADMIN)).json()["deleted"] == 1
        assert (await chat(gateway, chat_body(), key=SAME_TEAM_KEY)).headers["x-isthmus-cache"] == "miss"
        assert (await chat(gateway, chat_body())).headers["x-isthmus-cache"] == "hit"
        assert (await http.delete("/admin/cache", headers=ADMIN)).json()["deleted"] == 2
        assert (await chat(gateway, chat_body())).headers["x-isthmus-cache"] == "miss"
