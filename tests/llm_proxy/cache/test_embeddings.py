"""`/v1/embeddings` is cached exactly: the same scope, model and parameters hit with no provider call; a hit costs
$0, is audited with the saved cost and carries the same `x-isthmus-cache` headers as a chat hit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.llm_proxy.cache.conftest import SAME_TEAM_KEY, cache_settings
from tests.llm_proxy.cache.test_exact import post
from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway
from tests.llm_proxy.mock_provider import MockProvider, status

pytestmark = pytest.mark.anyio


def embedding_body(text: Any = "hello", **more: Any) -> dict[str, Any]:
    return {"model": "mock/text-embedding-3-small", "input": text, **more}


async def embed(gateway: Gateway, body: dict[str, Any], key: str = KEY, **headers: str) -> httpx2.Response:
    return await post(gateway, "/v1/embeddings", body, key, headers)


async def test_a_repeated_embedding_is_a_hit_that_costs_nothing_and_records_the_saving(
    tmp_path: Path, mock: MockProvider
) -> None:
    keys = [{"name": "dev-key", "team": "dev", "value": KEY, "models": ["*"], "budgets": [{"max_usd": 5}]}]
    pricing = {"mock/*": {"input": 1000, "output": 0}}
    settings = cache_settings(tmp_path, mock, {"ttl": "1h"}, virtual_keys=keys, pricing=pricing)
    async with serve_gateway(settings) as gateway:
        first = await embed(gateway, embedding_body())
        second = await embed(gateway, embedding_body())
        assert first.status_code == second.status_code == 200, first.text
        assert (first.headers["x-isthmus-cache"], second.headers["x-isthmus-cache"]) == ("miss", "hit")
        assert second.json() == first.json()
        assert second.headers["x-isthmus-route"] == "mock/text-embedding-3-small"
        assert len(mock.seen) == 1
        miss, hit = await gateway.wait_records(2)
        assert miss.cost_usd is not None and miss.cost_usd > 0 and miss.details["cache"] == "miss"
        assert hit.cost_usd == Decimal(0) and hit.details["cache"] == "hit"
        assert Decimal(hit.details["cache_saved_usd"]) == miss.cost_usd
        assert gateway.governance.metrics.cache_lookups.labels("hit")._value.get() == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"input": "hello!"},
        {"input": ["hello"]},
        {"dimensions": 2},
        {"encoding_format": "base64"},
        {"model": "mock/text-embedding-3-large"},
    ],
)
async def test_a_different_input_model_or_parameter_misses(
    tmp_path: Path, mock: MockProvider, changed: dict[str, Any]
) -> None:
    async with serve_gateway(cache_settings(tmp_path, mock, {})) as gateway:
        await embed(gateway, embedding_body())
        other = await embed(gateway, {**embedding_body(), **changed})
        assert other.status_code == 200, other.text
        assert other.headers["x-isthmus-cache"] == "miss"
        assert len(mock.seen) == 2


async def test_scope_request_headers_and_failures_apply_as_to_chat(tmp_path: Path, mock: MockProvider) -> None:
    async with serve_gateway(cache_settings(tmp_path, mock, {})) as gateway:
        mock.queue(status(400, "bad input"))
        assert (await embed(gateway, embedding_body())).status_code == 400  # never stored
        assert (await embed(gateway, embedding_body(), **{"x-isthmus-cache": "no-store"})).headers[
            "x-isthmus-cache"
        ] == "miss"
        assert (await embed(gateway, embedding_body())).headers["x-isthmus-cache"] == "miss"
        assert (await embed(gateway, embedding_body())).headers["x-isthmus-cache"] == "hit"
        assert (await embed(gateway, embedding_body(), key=SAME_TEAM_KEY)).headers["x-isthmus-cache"] == "miss"
        bypass = await embed(gateway, embedding_body(), **{"x-isthmus-cache": "no-cache"})
        assert bypass.headers["x-isthmus-cache"] == "bypass"
        assert (await embed(gateway, embedding_body(), **{"x-isthmus-cache": "later"})).status_code == 400
        assert len(mock.seen) == 5


async def test_skip_rules_and_a_semantic_cache_leave_embeddings_exact(tmp_path: Path, mock: MockProvider) -> None:
    """Embeddings take no temperature or tools, and are never embedded themselves to be searched by meaning."""
    cache = {"skip_when": {"tools": True}, "semantic": {"embedding_model": "mock/text-embedding-3-small"}}
    async with serve_gateway(cache_settings(tmp_path, mock, cache)) as gateway:
        await embed(gateway, embedding_body("how do I reset my password"))
        near = await embed(gateway, embedding_body("how do I reset my password please"))
        assert near.headers["x-isthmus-cache"] == "miss"
        assert (await embed(gateway, embedding_body("how do I reset my password"))).headers["x-isthmus-cache"] == "hit"
        assert len(mock.seen) == 2  # no embedding call of the cache's own
