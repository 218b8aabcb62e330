"""The embedding mock's vectors follow word overlap: paraphrases near, unrelated questions far."""

from __future__ import annotations

import math

import httpx2
import pytest

from bench.mock_embed import DIMENSIONS, embed, handle
from tests.bench.conftest import serve_on_loopback

pytestmark = pytest.mark.anyio

QUESTION = "how do i reset the password of my account on the web site"


def cosine(left: list[float], right: list[float]) -> float:
    return sum(a * b for a, b in zip(left, right, strict=True))


def test_vectors_have_unit_length_and_the_model_dimensions() -> None:
    vector = embed(QUESTION)
    assert len(vector) == DIMENSIONS
    assert math.isclose(math.sqrt(sum(value * value for value in vector)), 1.0)


def test_reordered_words_embed_identically_and_one_changed_word_stays_near() -> None:
    reordered = " ".join(reversed(QUESTION.split()))
    assert math.isclose(cosine(embed(QUESTION), embed(reordered)), 1.0)
    words = QUESTION.split()
    words[3] = "change"
    changed = cosine(embed(QUESTION), embed(" ".join(words)))
    assert 0.9 <= changed < 1.0
    assert cosine(embed(QUESTION), embed("what is the weather like in lisbon tomorrow")) < 0.3


async def test_the_server_answers_in_the_openai_shape() -> None:
    async for url in serve_on_loopback(handle):
        async with httpx2.AsyncClient(base_url=url) as client:
            answer = await client.post("/v1/embeddings", json={"model": "m", "input": [QUESTION, "other words"]})
            refused = await client.post("/v1/embeddings", json={"model": "m", "input": 3})
    assert answer.status_code == 200
    body = answer.json()
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert body["data"][0]["embedding"] == embed(QUESTION)
    assert body["usage"]["prompt_tokens"] == 15
    assert refused.status_code == 400 and "'input'" in refused.json()["error"]["message"]
