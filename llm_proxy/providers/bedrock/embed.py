"""Embeddings on Bedrock through InvokeModel (`/model/{modelId}/invoke`), in each model family's own body.

- Amazon Titan (`amazon.titan-embed-text-*`): one text per request, `{"inputText", "dimensions"}` ->
  `{"embedding", "inputTextTokenCount"}`; several inputs are sent concurrently (at most `TITAN_CONCURRENCY`).
- Cohere (`cohere.embed-*`): up to 96 texts per request, `{"texts", "input_type"}` -> `{"embeddings"}` (a list, or
  `{"float": [...]}` when embedding types were asked); Cohere reports no token count, so the pipeline counts.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio

from llm_proxy.errors import UnsupportedByProvider, UpstreamBadResponse
from llm_proxy.providers.base import Attempt, Reply
from llm_proxy.upstream import dumps
from llm_proxy.wire import openai
from toolpolicy.governor import Usage

if TYPE_CHECKING:
    from llm_proxy.providers.bedrock.adapter import BedrockAdapter

TITAN_CONCURRENCY = 8
COHERE_BATCH = 96
"""The most texts Cohere's embed models take in one request."""


async def embeddings(adapter: BedrockAdapter, attempt: Attempt) -> Reply:
    texts = openai.embedding_inputs(attempt.body.get("input"))
    if texts is None:
        raise UnsupportedByProvider(
            "Bedrock embeds text: 'input' must be a string or an array of strings", param="input"
        )
    model = attempt.model
    if "titan-embed" in model:
        vectors, tokens = await _titan(adapter, attempt, texts)
        usage: Usage | None = Usage(tokens_in=tokens, tokens_out=0)
    elif "cohere.embed" in model:
        vectors = []
        for start in range(0, len(texts), COHERE_BATCH):
            vectors += await _cohere(adapter, attempt, texts[start : start + COHERE_BATCH])
        usage, tokens = None, 0
    else:
        raise UnsupportedByProvider(
            f"provider {adapter.name!r}: embeddings are served for Amazon Titan and Cohere embed models, not {model!r}",
            param="model",
        )
    if len(vectors) != len(texts):
        raise UpstreamBadResponse(f"provider {adapter.name!r} answered embeddings of the wrong shape")
    reply = openai.embeddings_body(model, vectors, tokens, attempt.body.get("encoding_format"))
    if usage is None:
        del reply["usage"]  # the pipeline counts the input
    return Reply(reply, usage)


async def _invoke(adapter: BedrockAdapter, attempt: Attempt, payload: dict[str, Any]) -> dict[str, Any]:
    body = dumps(payload)
    url, headers = await adapter.request(adapter.url(attempt.model, "invoke"), body, attempt.key, "application/json")
    answer, _ = await adapter.upstream.post_json(adapter.name, url, headers, body)
    return answer


async def _titan(adapter: BedrockAdapter, attempt: Attempt, texts: list[str]) -> tuple[list[list[float]], int]:
    dimensions = attempt.body.get("dimensions")
    vectors: list[list[float]] = [[] for _ in texts]
    tokens = [0] * len(texts)
    limiter = anyio.CapacityLimiter(TITAN_CONCURRENCY)

    async def one(index: int) -> None:
        payload: dict[str, Any] = {"inputText": texts[index]}
        if isinstance(dimensions, int):
            payload["dimensions"] = dimensions
        async with limiter:
            answer = await _invoke(adapter, attempt, payload)
        vector = answer.get("embedding")
        if not isinstance(vector, list) or not _floats(vector):
            raise UpstreamBadResponse(f"provider {adapter.name!r} answered a Titan embedding without 'embedding'")
        vectors[index] = vector
        count = answer.get("inputTextTokenCount")
        tokens[index] = count if isinstance(count, int) else 0

    async with anyio.create_task_group() as group:
        for index in range(len(texts)):
            group.start_soon(one, index)
    return vectors, sum(tokens)


async def _cohere(adapter: BedrockAdapter, attempt: Attempt, texts: list[str]) -> list[list[float]]:
    input_type = attempt.body.get("input_type") or "search_document"
    answer = await _invoke(adapter, attempt, {"texts": texts, "input_type": input_type})
    embeddings = answer.get("embeddings")
    if isinstance(embeddings, dict):
        embeddings = embeddings.get("float")
    if not isinstance(embeddings, list) or not all(_floats(vector) for vector in embeddings):
        snippet = json.dumps(answer)[:80]
        raise UpstreamBadResponse(f"provider {adapter.name!r} answered Cohere embeddings of the wrong shape: {snippet}")
    return embeddings


def _floats(vector: Any) -> bool:
    return isinstance(vector, list) and all(isinstance(value, int | float) for value in vector)
