"""Two gateways sharing the cache live: through Redis (announcements plus a list of searchable entries) and through
PostgreSQL (a read on a miss, and `NOTIFY`). A paraphrase on one replica is a semantic hit on an entry stored on
the other, isolation still holds across replicas, and removals (clear, expiry) leave every replica."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from aiohttp import web

from llm_proxy.cache.cache import ResponseCache
from tests.conftest import POSTGRES_URL, StoreTarget
from tests.llm_proxy.cache.conftest import SAME_TEAM_KEY, Clock, cache_settings, use_clock
from tests.llm_proxy.cache.test_exact import chat, chat_body
from tests.llm_proxy.cache.test_semantic import PARAPHRASE, QUESTION, semantic_settings
from tests.llm_proxy.cache.word_embedder import WordEmbedder
from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway
from tests.llm_proxy.mock_provider import MockProvider, openai_chat
from tests.toolpolicy.limits_support import RedisServer

pytestmark = pytest.mark.anyio


def cache_of(gateway: Gateway) -> ResponseCache:
    cache = gateway.proxy.response_cache
    assert cache is not None
    return cache


def indexed(gateway: Gateway) -> int:
    index = cache_of(gateway).index
    assert index is not None
    return len(index)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`, at most 5 seconds."""
    with anyio.fail_after(5):
        while not condition():
            await anyio.sleep(0.01)


async def stored(one: Gateway, two: Gateway, text: str = QUESTION) -> None:
    """`one` answers `text` (a miss) and `two` has indexed the entry."""
    assert (await chat(one, chat_body(text))).headers["x-isthmus-cache"] == "miss"
    await until(lambda: indexed(two) == 1)


@contextlib.asynccontextmanager
async def sharing_postgresql(settings: Any, store_target: StoreTarget) -> AsyncIterator[tuple[Gateway, Gateway]]:
    """Two gateways on one PostgreSQL schema, without Redis."""
    connect = store_target.connect_args
    async with serve_gateway(settings, store_connect_args=connect) as one:
        async with serve_gateway(settings, store_connect_args=connect) as two:
            yield one, two


@pytest.fixture
async def stored_on_postgresql(
    tmp_path: Path, mock: MockProvider, embedder: WordEmbedder, store_target: StoreTarget
) -> AsyncIterator[tuple[Gateway, Gateway]]:
    """Two semantic gateways on one PostgreSQL schema: the first has answered `QUESTION`, the second indexed it."""
    async with sharing_postgresql(
        semantic_settings(tmp_path, mock, embedder, store=store_target.url), store_target
    ) as (one, two):
        await stored(one, two)
        yield one, two


@pytest.fixture
async def pair(
    tmp_path: Path, mock: MockProvider, embedder: WordEmbedder, private_redis: RedisServer
) -> AsyncIterator[tuple[Gateway, Gateway]]:
    settings = semantic_settings(tmp_path, mock, embedder, redis=private_redis.url)
    async with serve_gateway(settings) as one, serve_gateway(settings) as two:
        yield one, two


async def test_a_paraphrase_on_one_replica_hits_the_entry_stored_on_the_other(
    pair: tuple[Gateway, Gateway], mock: MockProvider, embedder: WordEmbedder
) -> None:
    one, two = pair
    await stored(one, two)
    hit = await chat(two, chat_body(PARAPHRASE))
    assert hit.headers["x-isthmus-cache"] == "semantic-hit"
    assert 0.9 <= float(hit.headers["x-isthmus-cache-similarity"]) < 1.0
    assert len(mock.seen) == 1
    assert embedder.inputs == [f"user: {QUESTION}", f"user: {PARAPHRASE}"]


@pytest.mark.parametrize(
    ("changed", "key"),
    [({}, SAME_TEAM_KEY), ({"temperature": 0.2}, KEY), ({"model": "mock/other-model"}, KEY)],
)
async def test_isolation_holds_across_replicas(
    pair: tuple[Gateway, Gateway], mock: MockProvider, changed: dict[str, Any], key: str
) -> None:
    one, two = pair
    await stored(one, two)
    other = await chat(two, {**chat_body(QUESTION), **changed}, key=key)
    assert other.headers["x-isthmus-cache"] == "miss"
    assert len(mock.seen) == 2


@pytest.mark.parametrize(
    "filters", [{}, {"model": "mock/gpt-test"}, {"key_name": "dev-key"}], ids=["all", "model", "key"]
)
async def test_clearing_on_one_replica_removes_the_entry_from_the_other(
    pair: tuple[Gateway, Gateway], mock: MockProvider, filters: dict[str, str]
) -> None:
    one, two = pair
    await stored(one, two)
    await cache_of(one).clear(**filters)
    await until(lambda: indexed(two) == 0 and len(cache_of(two).memory) == 0)
    assert (await chat(two, chat_body(PARAPHRASE))).headers["x-isthmus-cache"] == "miss"
    assert len(mock.seen) == 2


async def test_a_clear_on_one_replica_drops_an_answer_the_other_was_still_waiting_for(
    pair: tuple[Gateway, Gateway], mock: MockProvider
) -> None:
    """Two looked up (a miss) before one's clear reached it: the answer that arrives after is not stored anywhere."""
    one, two = pair
    arrived, release = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        arrived.set()
        await release.wait()
        return await openai_chat(request, body)

    mock.queue(held)
    asking = asyncio.create_task(chat(two, chat_body()))
    await arrived.wait()
    heard = cache_of(two).fence.generation
    await cache_of(one).clear()
    await until(lambda: cache_of(two).fence.generation > heard)
    release.set()
    assert (await asking).headers["x-isthmus-cache"] == "miss"
    await cache_of(two).drain()
    assert len(cache_of(two).memory) == 0
    assert (await chat(one, chat_body())).headers["x-isthmus-cache"] == "miss"


async def test_clearing_another_model_leaves_the_entry_on_both(pair: tuple[Gateway, Gateway]) -> None:
    one, two = pair
    await stored(one, two)
    await cache_of(one).clear(model="mock/other-model")
    await cache_of(one).clear(key_name="ops-key")
    # The clears' announcements went out after the entry's, on one channel: once a later entry arrives, they
    # have been applied.
    assert (await chat(one, chat_body("how do i reset my password"))).headers["x-isthmus-cache"] == "miss"
    await until(lambda: indexed(two) == 2)
    assert (await chat(two, chat_body(PARAPHRASE))).headers["x-isthmus-cache"] == "semantic-hit"


async def test_an_expired_entry_leaves_every_replica(pair: tuple[Gateway, Gateway], clock: Clock) -> None:
    one, two = pair
    use_clock(one, clock)
    use_clock(two, clock)
    await stored(one, two)
    clock.now += 3601
    await until(lambda: indexed(one) == 0 and indexed(two) == 0)
    assert len(cache_of(two).memory) == 0


async def test_a_replica_started_later_loads_the_vectors(
    tmp_path: Path, mock: MockProvider, embedder: WordEmbedder, private_redis: RedisServer
) -> None:
    settings = semantic_settings(tmp_path, mock, embedder, redis=private_redis.url)
    async with serve_gateway(settings) as one:
        assert (await chat(one, chat_body(QUESTION))).headers["x-isthmus-cache"] == "miss"
        with anyio.fail_after(5):
            await cache_of(one).drain()
        async with serve_gateway(settings) as late:
            assert indexed(late) == 1
            assert (await chat(late, chat_body(PARAPHRASE))).headers["x-isthmus-cache"] == "semantic-hit"
    assert len(mock.seen) == 1


async def test_a_replica_that_lost_redis_drops_what_was_cleared_meanwhile(
    pair: tuple[Gateway, Gateway], private_redis: RedisServer
) -> None:
    one, two = pair
    await stored(one, two)
    tier: Any = cache_of(one).shared
    await tier.redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await cache_of(one).clear()
    # Whether two heard the clear or reconnected after it, its load finds the entry gone.
    await until(lambda: indexed(two) == 0)


@pytest.mark.parametrize("store_target", ["postgresql"], indirect=True)
@pytest.mark.parametrize("reads", [True, False], ids=["read-on-miss", "memory-only"])
async def test_a_shared_postgresql_store_answers_the_other_replicas_entry(
    tmp_path: Path, mock: MockProvider, store_target: StoreTarget, reads: bool
) -> None:
    settings = cache_settings(tmp_path, mock, {"read_store_on_miss": reads}, store=store_target.url)
    async with sharing_postgresql(settings, store_target) as (one, two):
        assert (await chat(one, chat_body())).headers["x-isthmus-cache"] == "miss"
        with anyio.fail_after(5):
            await cache_of(one).drain()
        assert len(cache_of(two).memory) == 0
        second = await chat(two, chat_body())
        assert second.headers["x-isthmus-cache"] == ("hit" if reads else "miss")
    assert len(mock.seen) == (1 if reads else 2)


@pytest.mark.parametrize("store_target", ["postgresql"], indirect=True)
async def test_a_shared_postgresql_store_shares_vectors_and_removals(
    stored_on_postgresql: tuple[Gateway, Gateway], mock: MockProvider
) -> None:
    one, two = stored_on_postgresql
    assert (await chat(two, chat_body(PARAPHRASE))).headers["x-isthmus-cache"] == "semantic-hit"
    await cache_of(one).clear()
    await until(lambda: indexed(two) == 0)
    assert len(mock.seen) == 1


async def terminate(pids: list[int]) -> None:
    """End PostgreSQL backends, as a restart of the server or a network fault would end them."""
    connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
    finally:
        await connection.close()


@pytest.mark.parametrize("store_target", ["postgresql"], indirect=True)
async def test_a_failed_read_on_a_miss_is_a_miss_and_the_next_read_reconnects(
    tmp_path: Path, mock: MockProvider, store_target: StoreTarget
) -> None:
    settings = cache_settings(tmp_path, mock, {}, store=store_target.url)
    async with sharing_postgresql(settings, store_target) as (one, two):
        # A first miss opens the connection two reads on; then its backend ends.
        assert (await chat(two, chat_body("warm up"))).headers["x-isthmus-cache"] == "miss"
        reads: Any = getattr(cache_of(two).shared, "reads", None)
        await terminate([held[1].get_server_pid() for held in reads._idle])
        for text in ("hello", "bye"):
            assert (await chat(one, chat_body(text))).headers["x-isthmus-cache"] == "miss"
            with anyio.fail_after(5):
                await cache_of(one).drain()
        failed = await chat(two, chat_body("hello"))
        assert failed.status_code == 200 and failed.headers["x-isthmus-cache"] == "miss"
        assert (await chat(two, chat_body("bye"))).headers["x-isthmus-cache"] == "hit"
    assert len(mock.seen) == 4


@pytest.mark.parametrize("store_target", ["postgresql"], indirect=True)
async def test_a_removal_missed_while_not_listening_is_caught_up(stored_on_postgresql: tuple[Gateway, Gateway]) -> None:
    one, two = stored_on_postgresql
    follower: Any = getattr(cache_of(two).shared, "follower", None)
    await terminate([follower.server_pid])
    await until(lambda: not follower.listening.is_set())
    await cache_of(one).clear()
    await until(lambda: indexed(two) == 0)
