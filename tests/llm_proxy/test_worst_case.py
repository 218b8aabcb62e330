"""A request is reserved at its worst case before it is forwarded: `n` choices of `max_tokens` each, tool
definitions and images as input. Over what is left of a budget or token rate limit, it is refused and the provider
never sees it; within, it is forwarded and settled at the provider's reported usage."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from llm_proxy.estimate import IMAGE_TOKENS
from tests.llm_proxy.conftest import KEY, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider
from toolpolicy.settings import GatewaySettings

pytestmark = pytest.mark.anyio
HELLO = [{"role": "user", "content": "hello"}]
OUTPUT_PRICED = {"mock/priced": {"input": 0, "output": 1000}}  # $0.001 an output token
INPUT_PRICED = {"mock/priced": {"input": 100, "output": 0}}  # $0.0001 an input token: an image is at most $0.16
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def settings(tmp_path: Path, mock: MockProvider, pricing: dict[str, Any], **limits: Any) -> GatewaySettings:
    providers = {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}}
    keys = [{"name": "metered", "team": "dev", "value": KEY, "models": ["mock/*"], **limits}]
    return settings_for(tmp_path, providers, pricing=pricing, virtual_keys=keys)


async def post(url: str, path: str, body: dict[str, Any]) -> httpx2.Response:
    headers = {"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    async with httpx2.AsyncClient(base_url=url, headers=headers) as client:
        return await client.post(path, json=body)


def refused_by_budget(response: httpx2.Response) -> bool:
    error = response.json()["error"]
    return response.status_code == 429 and "budget key/metered 1d" in error["message"]


async def test_n_choices_of_max_tokens_each_over_the_budget_are_refused_before_the_provider(
    tmp_path: Path, mock: MockProvider
) -> None:
    # $0.50 a day; 100 output tokens cost $0.10, so n=6 may cost $0.60 and n=4 $0.40.
    config = settings(tmp_path, mock, OUTPUT_PRICED, budgets=[{"max_usd": 0.5, "period": "1d"}])
    body = {"model": "mock/priced", "messages": HELLO, "max_tokens": 100}
    async with serve_gateway(config) as gateway:
        over = await post(gateway.v1, "/chat/completions", {**body, "n": 6})
        seen_after_refusal = len(mock.seen)
        within = await post(gateway.v1, "/chat/completions", {**body, "n": 4})
        # Settled at the mock's usage (7 output tokens, $0.007), not held at $0.40: a second n=4 still fits.
        again = await post(gateway.v1, "/chat/completions", {**body, "n": 4})
        await gateway.governance.spend.flush()
        records = await gateway.wait_records(3)
    assert refused_by_budget(over) and over.json()["error"]["type"] == "rate_limit_error"
    assert seen_after_refusal == 0
    assert within.status_code == 200 and again.status_code == 200
    assert [seen.body["n"] for seen in mock.seen] == [4, 4]
    assert [record.cost_usd for record in records[1:]] == [Decimal("0.007"), Decimal("0.007")]


async def test_the_token_rate_limit_holds_every_choice(tmp_path: Path, mock: MockProvider) -> None:
    config = settings(tmp_path, mock, OUTPUT_PRICED, rate_limit={"tokens": "1000/1d"})
    body = {"model": "mock/priced", "messages": HELLO, "max_completion_tokens": 200}
    async with serve_gateway(config) as gateway:
        over = await post(gateway.v1, "/chat/completions", {**body, "n": 5})
        within = await post(gateway.v1, "/chat/completions", {**body, "n": 4})
    assert over.status_code == 429 and "rate limit key/metered tokens 1000/1d" in over.json()["error"]["message"]
    assert within.status_code == 200 and len(mock.seen) == 1
    # The refused request held nothing; the admitted one holds its input estimate and 4 × 200 output tokens.
    remaining = int(within.headers["x-ratelimit-remaining-tokens"])
    assert 1000 - 4 * 200 - 50 < remaining < 1000 - 4 * 200


@pytest.mark.parametrize("n", [0, -1, 129, 2.5, "2", True, None])
async def test_an_invalid_n_is_a_400_naming_it(tmp_path: Path, mock: MockProvider, n: Any) -> None:
    config = settings(tmp_path, mock, OUTPUT_PRICED)
    async with serve_gateway(config) as gateway:
        response = await post(gateway.v1, "/chat/completions", {"model": "mock/priced", "messages": HELLO, "n": n})
    if n is None:  # null is the default, one choice
        assert response.status_code == 200
        return
    error = response.json()["error"]
    assert (
        response.status_code == 400
        and error["param"] == "n"
        and "'n' must be an integer from 1 to 128" in (error["message"])
    )
    assert mock.seen == []


def openai_tools(size: int) -> list[dict[str, Any]]:
    schema = {"type": "object", "properties": {"query": {"type": "string", "description": "what to look up"}}}
    return [{"type": "function", "function": {"name": "lookup", "description": "x" * size, "parameters": schema}}]


def anthropic_tools(size: int) -> list[dict[str, Any]]:
    return [{"name": "lookup", "description": "x" * size, "input_schema": {"type": "object"}}]


@pytest.mark.parametrize(
    ("path", "tools"),
    [("/chat/completions", openai_tools), ("/messages", anthropic_tools)],
    ids=["openai", "anthropic"],
)
async def test_tool_definitions_count_as_input(tmp_path: Path, mock: MockProvider, path: str, tools: Any) -> None:
    # $0.50 at $0.0001 an input token: a 24,000-character tool description (~6,000 tokens) is over it.
    config = settings(tmp_path, mock, INPUT_PRICED, budgets=[{"max_usd": 0.5, "period": "1d"}])
    body = {"model": "mock/priced", "messages": HELLO, "max_tokens": 16}
    async with serve_gateway(config) as gateway:
        over = await post(gateway.v1, path, {**body, "tools": tools(24_000)})
        seen_after_refusal = len(mock.seen)
        within = await post(gateway.v1, path, {**body, "tools": tools(4_000)})
    assert refused_by_budget(over) and seen_after_refusal == 0
    assert within.status_code == 200 and len(mock.seen) == 1


def openai_images(count: int) -> list[dict[str, Any]]:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}}
    return [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, *[image] * count]}]


def anthropic_images(count: int) -> list[dict[str, Any]]:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    return [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, *[image] * count]}]


@pytest.mark.parametrize(
    ("path", "messages"),
    [("/chat/completions", openai_images), ("/messages", anthropic_images)],
    ids=["openai", "anthropic"],
)
async def test_each_image_is_reserved_at_its_worst_case_whatever_its_size(
    tmp_path: Path, mock: MockProvider, path: str, messages: Any
) -> None:
    # A 1-pixel PNG may still be billed as a large image: 4 images are over $0.50, 2 are within.
    assert 2 * IMAGE_TOKENS * 100 / 1_000_000 < 0.5 < 4 * IMAGE_TOKENS * 100 / 1_000_000
    config = settings(tmp_path, mock, INPUT_PRICED, budgets=[{"max_usd": 0.5, "period": "1d"}])
    async with serve_gateway(config) as gateway:
        over = await post(gateway.v1, path, {"model": "mock/priced", "messages": messages(4), "max_tokens": 16})
        seen_after_refusal = len(mock.seen)
        within = await post(gateway.v1, path, {"model": "mock/priced", "messages": messages(2), "max_tokens": 16})
    assert refused_by_budget(over) and seen_after_refusal == 0
    assert within.status_code == 200 and len(mock.seen) == 1


async def test_embeddings_reserve_their_input_only(tmp_path: Path, mock: MockProvider) -> None:
    # Embeddings generate no output: a small token limit is not taken by an imagined `max_tokens`.
    config = settings(tmp_path, mock, {}, rate_limit={"tokens": "100/1d"})
    async with serve_gateway(config) as gateway:
        first = await post(gateway.v1, "/embeddings", {"model": "mock/embed", "input": "hello world"})
        second = await post(gateway.v1, "/embeddings", {"model": "mock/embed", "input": "hello again"})
    assert first.status_code == 200 and second.status_code == 200
    # The first settled at the mock's 5 tokens; the second holds its own estimate.
    assert 100 - 5 - 20 < int(second.headers["x-ratelimit-remaining-tokens"]) < 100 - 5
