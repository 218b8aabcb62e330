"""Google Cloud Vertex AI: Gemini and Claude models of one project and location, with an OAuth access token.

- Gemini (`vertex/gemini-2.5-flash`): the Gemini adapter's mapping at
  `{base}/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`
  (`:streamGenerateContent?alt=sse`);
- Claude (`vertex/claude-sonnet-4-5@20250929`, any `claude-*`): the Anthropic adapter's mapping at
  `publishers/anthropic/models/{m}:rawPredict` (`:streamRawPredict`), the model in the URL and
  `anthropic_version: vertex-2023-10-16` in the body; spoken natively for `/v1/messages`;
- embeddings (`text-embedding-005`, `gemini-embedding-001`...): `:predict` with `instances`.

A 401 from Vertex drops the cached token and the attempt is made once more with a new one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, ClassVar
from urllib.parse import quote

from llm_proxy.errors import UnsupportedByProvider, UpstreamBadResponse, UpstreamStatusError
from llm_proxy.providers.anthropic import AnthropicAdapter
from llm_proxy.providers.base import Attempt, Op, Reply, join_url, versioned
from llm_proxy.providers.gemini import GeminiAdapter
from llm_proxy.upstream import Upstream
from llm_proxy.wire import openai
from toolpolicy.governor import Usage
from toolpolicy.settings import ProviderSettings

ANTHROPIC_VERSION = "vertex-2023-10-16"
DEFAULT_LOCATION = "us-central1"
_CLAUDE_OPS: frozenset[Op] = frozenset({"chat", "messages"})
_GEMINI_OPS: frozenset[Op] = frozenset({"chat", "embeddings"})
_EMBED_BATCH = 250
"""Texts per `:predict` call of the text-embedding models (Vertex's limit); gemini-embedding takes one."""


def default_base_url(location: str) -> str:
    """Vertex's regional endpoint, or the global one for `location: global`."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


class _Gemini(GeminiAdapter):
    """The Gemini adapter's request and response mapping, at Vertex's URLs with Vertex's token."""

    def __init__(self, vertex: VertexAdapter, settings: ProviderSettings, upstream: Upstream) -> None:
        super().__init__(vertex.name, settings, upstream)
        self.vertex = vertex

    def url(self, model: str, method: str) -> str:
        return self.vertex.model_url("google", model, method)

    async def headers(self, attempt: Attempt) -> dict[str, str]:
        return await self.vertex.auth_headers()

    async def _embed(self, attempt: Attempt) -> Reply:
        texts = openai.embedding_inputs(attempt.body.get("input"))
        if texts is None:
            raise UnsupportedByProvider("Vertex AI embeds text: 'input' must be a string or an array of strings")
        parameters: dict[str, Any] = {}
        if isinstance(attempt.body.get("dimensions"), int):
            parameters["outputDimensionality"] = attempt.body["dimensions"]
        size = 1 if attempt.model.startswith("gemini-embedding") else _EMBED_BATCH
        url = self.url(attempt.model, "predict")
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), size):
            payload: dict[str, Any] = {"instances": [{"content": text} for text in texts[start : start + size]]}
            if parameters:
                payload["parameters"] = parameters
            body, _ = await self.upstream.post_json(self.name, url, await self.headers(attempt), payload)
            for prediction in _predictions(self.name, body):
                vectors.append(prediction["values"])
                count = (prediction.get("statistics") or {}).get("token_count")
                tokens += int(count) if isinstance(count, int | float) else 0
        if len(vectors) != len(texts):
            raise UpstreamBadResponse(f"provider {self.name!r} answered {len(vectors)} embeddings for {len(texts)}")
        reply = openai.embeddings_body(attempt.model, vectors, tokens, attempt.body.get("encoding_format"))
        return Reply(reply, Usage(tokens_in=tokens) if tokens else None)


def _predictions(provider: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    predictions = body.get("predictions")
    if not isinstance(predictions, list):
        raise UpstreamBadResponse(f"provider {provider!r} answered embeddings without 'predictions'")
    found = [item.get("embeddings") if isinstance(item, dict) else None for item in predictions]
    if not all(isinstance(item, dict) and isinstance(item.get("values"), list) for item in found):
        raise UpstreamBadResponse(f"provider {provider!r} answered an embedding without 'values'")
    return found  # type: ignore[return-value]  # checked just above


class _Claude(AnthropicAdapter):
    """The Anthropic adapter's request and response mapping, at Vertex's rawPredict URLs with Vertex's token."""

    def __init__(self, vertex: VertexAdapter, settings: ProviderSettings, upstream: Upstream) -> None:
        super().__init__(vertex.name, settings, upstream)
        self.vertex = vertex

    def endpoint(self, attempt: Attempt) -> str:
        return self.vertex.model_url("anthropic", attempt.model, "streamRawPredict" if attempt.stream else "rawPredict")

    async def headers(self, attempt: Attempt, payload: dict[str, Any]) -> dict[str, str]:
        # The API version goes in the body; betas are forwarded as to Anthropic.
        headers = await self.vertex.auth_headers()
        if "anthropic-beta" in attempt.headers:
            headers["anthropic-beta"] = attempt.headers["anthropic-beta"]
        return headers

    def payload(self, attempt: Attempt) -> tuple[dict[str, Any], str | None]:
        payload, json_tool = super().payload(attempt)
        payload.pop("model", None)
        payload["anthropic_version"] = ANTHROPIC_VERSION
        return payload, json_tool

    def structured_outputs(self, model: str) -> bool:
        return False  # Anthropic's structured-outputs beta is not on Vertex AI: JSON mode goes as a forced tool


class VertexAdapter:
    kind: ClassVar[str] = "vertex"
    ops: ClassVar[frozenset[Op]] = _CLAUDE_OPS | _GEMINI_OPS
    needs_key: ClassVar[bool] = False
    """Vertex authenticates with the credentials file or Application Default Credentials, not keys."""
    default_models: ClassVar[tuple[str, ...]] = (
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "claude-sonnet-4-5@20250929",
        "claude-haiku-4-5@20251001",
        "claude-opus-4-1@20250805",
        "text-embedding-005",
        "gemini-embedding-001",
    )
    lists_models: ClassVar[bool] = False

    def __init__(self, name: str, settings: ProviderSettings, upstream: Upstream) -> None:
        self.name = name
        self.location = settings.location or DEFAULT_LOCATION
        # google-auth (with requests and urllib3 behind it, about 7 MiB resident) is loaded only by gateways that
        # have a vertex provider.
        from llm_proxy.providers.vertex.auth import TokenSource, load_file

        credentials, file_project = load_file(settings.credentials_file) if settings.credentials_file else (None, None)
        project = settings.project or file_project
        if not project:
            raise ValueError(f"provider {name!r}: credentials_file {settings.credentials_file!r} names no project_id")
        self.project = project
        self.tokens = TokenSource(name, credentials)
        self.base_url = versioned(settings.base_url or default_base_url(self.location), "v1")
        self.gemini = _Gemini(self, settings, upstream)
        self.claude = _Claude(self, settings, upstream)

    def ops_for(self, model: str) -> frozenset[Op]:
        return _CLAUDE_OPS if model.startswith("claude-") else _GEMINI_OPS

    def model_url(self, publisher: str, model: str, method: str) -> str:
        path = f"projects/{quote(self.project, safe='')}/locations/{self.location}/publishers/{publisher}"
        return join_url(self.base_url, f"{path}/models/{quote(model, safe='@')}:{method}")

    async def auth_headers(self) -> dict[str, str]:
        headers = {"authorization": f"Bearer {await self.tokens.token()}"}
        quota_project = getattr(self.tokens.credentials, "quota_project_id", None)
        if isinstance(quota_project, str) and quota_project:
            headers["x-goog-user-project"] = quota_project
        return headers

    def _adapter(self, attempt: Attempt) -> _Gemini | _Claude:
        if attempt.op not in self.ops_for(attempt.model):
            family = "Claude" if attempt.model.startswith("claude-") else "Gemini and embedding"
            raise UnsupportedByProvider(
                f"provider {self.name!r}: {family} models on Vertex AI do not serve {attempt.op}"
            )
        return self.claude if attempt.model.startswith("claude-") else self.gemini

    async def list_models(self, key: str | None) -> list[str]:
        raise UnsupportedByProvider(f"provider {self.name!r}: Vertex AI model listing is not used; set models:")

    async def send(self, attempt: Attempt) -> Reply:
        adapter = self._adapter(attempt)
        try:
            return await adapter.send(attempt)
        except UpstreamStatusError as exc:
            if not self._token_lapsed(exc):
                raise
        return await adapter.send(attempt)

    async def stream(self, attempt: Attempt) -> AsyncGenerator[dict[str, Any], None]:
        adapter = self._adapter(attempt)
        started = False
        for last_try in (False, True):
            try:
                async with aclosing(adapter.stream(attempt)) as events:
                    async for event in events:
                        started = True
                        yield event
                return
            except UpstreamStatusError as exc:
                if started or last_try or not self._token_lapsed(exc):
                    raise

    def _token_lapsed(self, exc: UpstreamStatusError) -> bool:
        """Whether Vertex refused a token it had taken before (expired early, revoked): then it is dropped and the
        attempt made once more with a new one, rather than cooling the provider's credentials down."""
        from llm_proxy.providers.vertex.auth import CredentialsRefused  # loaded by __init__ already

        if exc.upstream_status != 401 or isinstance(exc, CredentialsRefused):
            return False
        self.tokens.invalidate()
        return True
