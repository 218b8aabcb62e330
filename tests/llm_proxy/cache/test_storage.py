"""Where entries live: the store keeps them across a restart; Redis shares them between two gateways."""

from __future__ import annotations

import secrets
from pathlib import Path

import anyio
import pytest

from tests.llm_proxy.cache.conftest import cache_settings
from tests.llm_proxy.cache.test_exact import chat, chat_body
from tests.llm_proxy.conftest import serve_gateway
from tests.llm_proxy.mock_provider import MockProvider

pytestmark = pytest.mark.anyio


async def test_a_restart_keeps_the_cache(tmp_path: Path, mock: MockProvider) -> None:
    settings = cache_settings(tmp_path, mock, {})
    async with serve_gateway(settings) as gateway:
        assert (await chat(gateway, chat_body())).headers["x-isthmus-cache"] == "miss"
    async with serve_gateway(settings) as restarted:
        assert (await chat(restarted, chat_body())).headers["x-isthmus-cache"] == "hit"
    assert len(mock.seen) == 1


async def test_two_gateways_share_entries_through_redis(tmp_path: Path, mock: MockProvider) -> None:
    prefix = f"isthmus-test-cache-{secrets.token_hex(6)}:"
    settings = cache_settings(tmp_path, mock, {"redis_prefix": prefix}, redis="redis://127.0.0.1:6379/0")
    async with serve_gateway(settings) as one, serve_gateway(settings) as two:
        try:
            assert (await chat(one, chat_body())).headers["x-isthmus-cache"] == "miss"
            cache = one.proxy.response_cache
            assert cache is not None
            with anyio.fail_after(5):
                await cache.drain()
            assert (await chat(two, chat_body())).headers["x-isthmus-cache"] == "hit"
            assert len(mock.seen) == 1
        finally:
            other = two.proxy.response_cache
            assert other is not None
            await other.clear()
