"""Google AI (Gemini): `generateContent`, `streamGenerateContent` and `batchEmbedContents`."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, ClassVar
from urllib.parse import quote

from llm_proxy.errors import UnsupportedByProvider, UpstreamBadResponse
from llm_proxy.providers.base import (
    MAX_LISTED_MODELS,
    MAX_LISTING_PAGES,
    Attempt,
    Op,
    Reply,
    join_url,
    listed_ids,
    sse_json,
    versioned,
)
from llm_proxy.upstream import Upstream
from llm_proxy.wire import gemini, openai
from llm_proxy.wire.openai import usage_of as openai_usage
from toolpolicy.settings import ProviderSettings

_SERVED_METHODS = frozenset({"generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents"})


def _serves(item: Any) -> bool:
    """Whether a listed model answers an operation the adapter sends (a listing without methods says nothing)."""
    methods = item.get("supportedGenerationMethods") if isinstance(item, dict) else None
    return not isinstance(methods, list) or any(method in _SERVED_METHODS for method in methods)


class GeminiAdapter:
    kind: ClassVar[str] = "gemini"
    ops: ClassVar[frozenset[Op]] = frozenset({"chat", "embeddings"})
    needs_key: ClassVar[bool] = True
    default_models: ClassVar[tuple[str, ...]] = ()
    lists_models: ClassVar[bool] = True
    default_base_url: ClassVar[str] = "https://generativelanguage.googleapis.com/v1beta"

    def __init__(self, name: str, settings: ProviderSettings, upstream: Upstream) -> None:
        self.name = name
        self.upstream = upstream
        # With or without the version, as for Anthropic: the google-genai SDK adds it to its base URL itself.
        self.base_url = versioned(settings.base_url or self.default_base_url, "v1beta")

    def url(self, model: str, method: str) -> str:
        return join_url(self.base_url, f"models/{quote(model, safe='')}:{method}")

    async def headers(self, attempt: Attempt) -> dict[str, str]:
        """How a request authenticates: an API key here, an OAuth token on Vertex AI."""
        return {"x-goog-api-key": attempt.key} if attempt.key else {}

    async def list_models(self, key: str | None) -> list[str]:
        """`GET models`, page after page (`nextPageToken`): the ids without their `models/` prefix, of the models
        that generate or embed content (the listing also names tuning-only and other models)."""
        headers = {"x-goog-api-key": key} if key else {}
        url = join_url(self.base_url, "models")
        ids: list[str] = []
        params = {"pageSize": "1000"}
        for _ in range(MAX_LISTING_PAGES):
            body = await self.upstream.get_json(self.name, url, headers, params)
            if not isinstance(body, dict):
                raise UpstreamBadResponse(f"provider {self.name!r} listed its models in something not an object")
            items = body.get("models", [])
            if isinstance(items, list):
                items = [item for item in items if _serves(item)]
            ids += listed_ids(self.name, items, "name", strip="models/")
            token = body.get("nextPageToken")
            if not isinstance(token, str) or not token or len(ids) >= MAX_LISTED_MODELS:
                break
            params = {"pageSize": "1000", "pageToken": token}
        return ids[:MAX_LISTED_MODELS]

    async def send(self, attempt: Attempt) -> Reply:
        if attempt.op == "embeddings":
            return await self._embed(attempt)
        url = self.url(attempt.model, "generateContent")
        payload = gemini.chat_to_gemini(attempt.body, attempt.model)
        body, _ = await self.upstream.post_json(self.name, url, await self.headers(attempt), payload)
        if not isinstance(body.get("candidates"), list) and "promptFeedback" not in body:
            raise UpstreamBadResponse(f"provider {self.name!r} answered without candidates")
        completion = gemini.gemini_to_completion(body, attempt.model)
        return Reply(completion, openai_usage(completion.get("usage")))

    async def stream(self, attempt: Attempt) -> AsyncGenerator[dict[str, Any], None]:
        url = self.url(attempt.model, "streamGenerateContent") + "?alt=sse"
        payload = gemini.chat_to_gemini(attempt.body, attempt.model)
        translate = gemini.GeminiToChunks(attempt.model)
        headers = await self.headers(attempt)
        async for _, response in sse_json(self.name, self.upstream.post_stream(self.name, url, headers, payload)):
            for chunk in translate.feed(response):
                yield chunk
        for chunk in translate.finish():
            yield chunk

    async def _embed(self, attempt: Attempt) -> Reply:
        texts = openai.embedding_inputs(attempt.body.get("input"))
        if texts is None:
            raise UnsupportedByProvider(
                "Gemini embeds text: 'input' must be a string or an array of strings", param="input"
            )
        payload = gemini.embed_request(attempt.model, texts, attempt.body.get("dimensions"))
        url = self.url(attempt.model, "batchEmbedContents")
        body, _ = await self.upstream.post_json(self.name, url, await self.headers(attempt), payload)
        vectors = gemini.embed_vectors(body)
        if vectors is None or len(vectors) != len(texts):
            raise UpstreamBadResponse(f"provider {self.name!r} answered embeddings of the wrong shape")
        # Gemini reports no usage for embeddings: the pipeline counts the input.
        reply = openai.embeddings_body(attempt.model, vectors, 0, attempt.body.get("encoding_format"))
        del reply["usage"]
        return Reply(reply, None)
