"""`DELETE /admin/cache` wins over the writes under way: an entry cleared never comes back, neither from a shared
write that was in flight when the clear came, nor from an answer to a request that looked up before it. Orderings
are injected (a gated shared tier, a gated provider answer), never waited out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from llm_proxy.cache.entries import Entry
from llm_proxy.cache.fence import KEPT_CLEARS, ClearFence
from llm_proxy.cache.tiers import SharedTier
from tests.llm_proxy.cache.conftest import cache_settings
from tests.llm_proxy.cache.test_exact import chat, chat_body
from tests.llm_proxy.conftest import serve_gateway
from tests.llm_proxy.mock_provider import MockProvider, openai_chat

pytestmark = pytest.mark.anyio


class GatedTier:
    """The gateway's own shared tier, whose writes start, then wait for `release` before they go on."""

    def __init__(self, tier: SharedTier) -> None:
        self.tier = tier
        self.name, self.read_on_miss = tier.name, tier.read_on_miss
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def put(self, entry: Entry) -> None:
        self.started.set()
        await self.release.wait()
        await self.tier.put(entry)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tier, name)


async def test_a_clear_waits_for_a_shared_write_under_way_then_deletes_it(tmp_path: Path, mock: MockProvider) -> None:
    settings = cache_settings(tmp_path, mock, {})
    async with serve_gateway(settings) as gateway:
        cache = gateway.proxy.response_cache
        assert cache is not None and cache.shared is not None
        store_tier = cache.shared
        gated = cache.shared = GatedTier(store_tier)  # type: ignore[assignment]
        assert (await chat(gateway, chat_body())).headers["x-isthmus-cache"] == "miss"
        await gated.started.wait()  # the store write is under way, held before it lands
        clearing = asyncio.create_task(cache.clear())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not clearing.done()  # it waits for the write under way
        assert len(cache.memory) == 0
        gated.release.set()
        await clearing
        await cache.drain()
        assert await store_tier.count(cache.clock()) == 0
        assert (await chat(gateway, chat_body())).headers["x-isthmus-cache"] == "miss"
    async with serve_gateway(settings) as restarted:  # what the store holds is loaded at start: only the new answer
        restarted_cache = restarted.proxy.response_cache
        assert restarted_cache is not None and len(restarted_cache.memory) == 1


async def test_an_answer_to_a_request_that_looked_up_before_the_clear_is_not_stored(
    tmp_path: Path, mock: MockProvider
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        arrived.set()
        await release.wait()
        return await openai_chat(request, body)

    settings = cache_settings(tmp_path, mock, {})
    async with serve_gateway(settings) as gateway:
        cache = gateway.proxy.response_cache
        assert cache is not None and cache.shared is not None
        mock.queue(held)
        asking = asyncio.create_task(chat(gateway, chat_body()))
        await arrived.wait()  # looked up (a miss), now at the provider
        await cache.clear()
        release.set()
        assert (await asking).headers["x-isthmus-cache"] == "miss"
        await cache.drain()
        assert len(cache.memory) == 0 and await cache.shared.count(cache.clock()) == 0
        assert (await chat(gateway, chat_body())).headers["x-isthmus-cache"] == "miss"
        assert (await chat(gateway, chat_body())).headers["x-isthmus-cache"] == "hit"


def entry(key_name: str, model: str) -> Entry:
    return Entry(f"key:{key_name}|chat|{model}|x", "chat", model, key_name, model, {}, 1, 1, "0", 0.0, 10.0)


def test_the_fence_drops_only_writes_a_later_matching_clear_covers() -> None:
    fence = ClearFence()
    before = fence.generation
    fence.clear("bot", None)
    assert fence.cleared_since(before, entry("bot", "m/a"))
    assert not fence.cleared_since(before, entry("other", "m/a"))  # the clear was of another key's entries
    assert not fence.cleared_since(fence.generation, entry("bot", "m/a"))  # looked up after the clear
    fence.clear(None, "m/b")
    assert fence.cleared_since(before, entry("other", "m/b"))
    for _ in range(KEPT_CLEARS):
        fence.clear("nobody", None)
    assert fence.cleared_since(before, entry("other", "m/a"))  # too old to tell: dropped to be safe
