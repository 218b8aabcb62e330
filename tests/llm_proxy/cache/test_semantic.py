"""The semantic cache: paraphrases answered from the cache with their similarity, never across scopes, models or
other parameters (a hard filter, not a score), long conversations left to the exact cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest

from tests.llm_proxy.cache.conftest import SAME_TEAM_KEY, cache_settings
from tests.llm_proxy.cache.test_exact import chat, chat_body
from tests.llm_proxy.cache.word_embedder import WordEmbedder
from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway
from tests.llm_proxy.mock_provider import MockProvider

pytestmark = pytest.mark.anyio
QUESTION = "what is the capital of france"
PARAPHRASE = "what is the capital of france please"


def semantic_settings(tmp_path: Path, mock: MockProvider, embedder: WordEmbedder, **overrides: Any) -> Any:
    semantic = {"embedding_model": "embed/words", "threshold": 0.9, "max_messages": 2}
    embed = {"kind": "openai", "base_url": embedder.url, "keys": [{"value": "sk-embed"}]}
    return cache_settings(tmp_path, mock, {"semantic": semantic}, more_providers={"embed": embed}, **overrides)


@pytest.fixture
async def semantic(tmp_path: Path, mock: MockProvider, embedder: WordEmbedder) -> AsyncIterator[Gateway]:
    async with serve_gateway(semantic_settings(tmp_path, mock, embedder)) as gateway:
        yield gateway


async def settled(gateway: Gateway) -> None:
    cache = gateway.proxy.response_cache
    assert cache is not None
    with anyio.fail_after(5):
        await cache.drain()


async def test_a_paraphrase_is_a_semantic_hit_with_its_similarity(
    semantic: Gateway, mock: MockProvider, embedder: WordEmbedder
) -> None:
    first = await chat(semantic, chat_body(QUESTION))
    hit = await chat(semantic, chat_body(PARAPHRASE))
    assert first.headers["x-isthmus-cache"] == "miss"
    assert hit.headers["x-isthmus-cache"] == "semantic-hit"
    similarity = float(hit.headers["x-isthmus-cache-similarity"])
    assert 0.9 <= similarity < 1.0
    assert hit.json()["choices"] == first.json()["choices"]
    assert len(mock.seen) == 1
    assert embedder.inputs == [f"user: {QUESTION}", f"user: {PARAPHRASE}"]
    records = await semantic.wait_records(4)
    answered = [r for r in records if r.details.get("cache") == "semantic-hit"]
    assert answered[0].details["cache_similarity"] == pytest.approx(similarity, abs=1e-4)
    assert answered[0].cost_usd == 0
    assert sum(1 for r in records if r.details.get("cache_embedding")) == 2


async def test_an_unrelated_question_misses(semantic: Gateway, mock: MockProvider) -> None:
    await chat(semantic, chat_body(QUESTION))
    other = await chat(semantic, chat_body("how do i reset my password"))
    assert other.headers["x-isthmus-cache"] == "miss"
    assert len(mock.seen) == 2


@pytest.mark.parametrize(
    ("changed", "key"),
    [({}, SAME_TEAM_KEY), ({"temperature": 0.2}, KEY), ({"model": "mock/other-model"}, KEY)],
)
async def test_isolation_is_a_hard_filter(
    semantic: Gateway, mock: MockProvider, changed: dict[str, Any], key: str
) -> None:
    await chat(semantic, chat_body(QUESTION))
    other = await chat(semantic, {**chat_body(QUESTION), **changed}, key=key)
    assert other.headers["x-isthmus-cache"] == "miss"
    assert len(mock.seen) == 2


async def test_longer_conversations_are_not_embedded(semantic: Gateway, embedder: WordEmbedder) -> None:
    messages = [{"role": "user", "content": text} for text in ("one", "two", "three")]
    await chat(semantic, {"model": "mock/gpt-test", "messages": messages})
    assert (await chat(semantic, {"model": "mock/gpt-test", "messages": messages})).headers["x-isthmus-cache"] == "hit"
    assert embedder.inputs == []


async def test_an_answer_stored_without_a_lookup_is_embedded_off_the_request_path(
    semantic: Gateway, mock: MockProvider, embedder: WordEmbedder
) -> None:
    first = await chat(semantic, chat_body(QUESTION), **{"x-isthmus-cache": "no-cache"})
    await settled(semantic)
    assert embedder.inputs == [f"user: {QUESTION}"]
    async with openai.AsyncOpenAI(base_url=semantic.v1, api_key=KEY, max_retries=0) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="mock/gpt-test",
            messages=[{"role": "user", "content": PARAPHRASE}],
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert raw.headers["x-isthmus-cache"] == "semantic-hit"
    assert text == first.json()["choices"][0]["message"]["content"]
    assert len(mock.seen) == 1


async def test_a_restart_rebuilds_the_index_without_embedding_again(
    tmp_path: Path, mock: MockProvider, embedder: WordEmbedder
) -> None:
    settings = semantic_settings(tmp_path, mock, embedder)
    async with serve_gateway(settings) as gateway:
        await chat(gateway, chat_body(QUESTION))
    async with serve_gateway(settings) as restarted:
        assert (await chat(restarted, chat_body(PARAPHRASE))).headers["x-isthmus-cache"] == "semantic-hit"
    assert len(embedder.inputs) == 2
