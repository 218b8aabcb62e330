"""OpenAI, and every server that speaks its API (Groq, Mistral, Together, DeepSeek, OpenRouter, vLLM, Ollama...).

The client's body goes through untouched apart from `model`, so fields this proxy does not know still reach the
provider. Chat streams always ask for the final usage chunk. `OpenAIResponsesAdapter` also speaks the Responses API
(`POST {base}/responses`), for providers whose `native_responses` setting says the server has it.

`base_url` is taken as the OpenAI SDK takes `OPENAI_BASE_URL`: version included, since OpenAI-compatible servers put
their API at different paths (`/v1`, `/openai/v1`, `/api/v1`, or the root as Perplexity and DeepSeek do), so no
version is guessed; only OpenAI's own `https://api.openai.com` without a path means `https://api.openai.com/v1`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from llm_proxy.errors import UpstreamStatusError
from llm_proxy.providers.base import (
    MAX_LISTED_MODELS,
    Attempt,
    Op,
    Reply,
    join_url,
    listed_ids,
    require_list,
    sse_objects,
)
from llm_proxy.upstream import Upstream
from llm_proxy.wire import openai
from toolpolicy.settings import ProviderSettings

_PATHS = {"chat": "chat/completions", "embeddings": "embeddings", "responses": "responses"}
_LISTS = {"chat": "choices", "embeddings": "data", "responses": "output"}


def api_base(base_url: str) -> str:
    """`base_url` without trailing slashes; OpenAI's own host without a path gets its `/v1`."""
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    return f"{base}/v1" if parts.hostname == "api.openai.com" and not parts.path else base


class OpenAIAdapter:
    kind: ClassVar[str] = "openai"
    ops: ClassVar[frozenset[Op]] = frozenset({"chat", "embeddings"})
    needs_key: ClassVar[bool] = False
    """Local servers (Ollama, vLLM) take no key: a provider configured without keys sends none."""
    default_models: ClassVar[tuple[str, ...]] = ()
    lists_models: ClassVar[bool] = True
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"

    def __init__(self, name: str, settings: ProviderSettings, upstream: Upstream) -> None:
        self.name = name
        self.settings = settings
        self.upstream = upstream
        self.base_url = api_base(settings.base_url or self.default_base_url)
        self._urls = {op: join_url(self.base_url, path) for op, path in _PATHS.items()}
        """Each operation's URL, joined once rather than on every request."""

    def url(self, attempt: Attempt) -> str:
        return self._urls[attempt.op]

    def headers(self, attempt: Attempt) -> dict[str, str]:
        return self.key_headers(attempt.key)

    def key_headers(self, key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    async def list_models(self, key: str | None) -> list[str]:
        """`GET <base_url>/models`: `{"data": [{"id": ...}]}`, or the bare array some compatible servers answer."""
        body = await self.upstream.get_json(self.name, join_url(self.base_url, "models"), self.key_headers(key))
        items = body.get("data") if isinstance(body, dict) else body
        return listed_ids(self.name, items, "id")[:MAX_LISTED_MODELS]

    def payload(self, attempt: Attempt) -> dict[str, Any]:
        return {**attempt.body, "model": attempt.model}

    async def send(self, attempt: Attempt) -> Reply:
        body, raw = await self.upstream.post_json(
            self.name, self.url(attempt), self.headers(attempt), self.payload(attempt)
        )
        require_list(self.name, body, _LISTS[attempt.op])
        if attempt.op == "responses":
            return Reply(body, openai.response_usage_of(body.get("usage")), raw)
        return Reply(body, openai.usage_of(body.get("usage")), raw)

    def stream(self, attempt: Attempt) -> AsyncGenerator[dict[str, Any], None]:
        # The stream of `sse_objects` itself, not one of this method's around it: a generator step less per event.
        # Nothing is sent before the stream's first item is asked for: the request is made by `post_stream`.
        if attempt.op == "responses":
            payload = {**self.payload(attempt), "stream": True}
            chunks = self.upstream.post_stream(self.name, self.url(attempt), self.headers(attempt), payload)
            return sse_objects(self.name, chunks, self._check_event)
        payload = self.payload(attempt)
        options = payload.get("stream_options")
        payload["stream"] = True
        payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        chunks = self.upstream.post_stream(self.name, self.url(attempt), self.headers(attempt), payload)
        return sse_objects(self.name, chunks, self._check_chunk)

    def _check_chunk(self, chunk: dict[str, Any]) -> None:
        """A chat stream's error object raises."""
        if "choices" not in chunk and isinstance(chunk.get("error"), dict):
            message = chunk["error"].get("message") or "stream error"
            raise UpstreamStatusError(f"provider {self.name!r} stream error: {message}", upstream_status=500)

    def _check_event(self, event: dict[str, Any]) -> None:
        """A Responses stream's `error` event raises (a `response.failed` is relayed)."""
        if event.get("type") == "error":
            message = event.get("message") or (event.get("error") or {}).get("message") or "stream error"
            raise UpstreamStatusError(f"provider {self.name!r} stream error: {message}", upstream_status=500)


class OpenAIResponsesAdapter(OpenAIAdapter):
    """An OpenAI provider whose server has the Responses API: `/v1/responses` is passed through to it."""

    ops: ClassVar[frozenset[Op]] = frozenset({"chat", "embeddings", "responses"})
