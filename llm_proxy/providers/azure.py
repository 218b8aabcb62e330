"""Azure OpenAI: OpenAI's wire format with an `api-key` header, at a deployment URL or on the `/openai/v1` API.

The model name of a target is the deployment name: `azure/my-gpt4o-deployment`. With a dated `api_version` (the
default) requests go to `openai/deployments/{deployment}/...?api-version=...`; with `api_version: v1` they go to
Azure's version-less `openai/v1/...` API, the deployment in the body's `model` as OpenAI's API takes it, and
`/v1/responses` may be native there (`responses: native`).
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from llm_proxy.errors import UnsupportedByProvider
from llm_proxy.providers.base import Attempt, Op, join_url
from llm_proxy.providers.openai import OpenAIAdapter

DEFAULT_API_VERSION = "2024-10-21"
_PATHS = {"chat": "chat/completions", "embeddings": "embeddings", "responses": "responses"}


class AzureAdapter(OpenAIAdapter):
    kind: ClassVar[str] = "azure"
    needs_key: ClassVar[bool] = True
    lists_models: ClassVar[bool] = False
    """Azure's data plane lists the resource's base models, not the deployment names requests must use: an azure
    provider lists its configured `models:` (deployments) only."""

    def url(self, attempt: Attempt) -> str:
        # Both https://<resource>.openai.azure.com and .../openai are accepted as base_url.
        resource = self.base_url.rstrip("/").removesuffix("/openai/v1").removesuffix("/openai")
        if self.settings.azure_v1:
            return join_url(resource, f"openai/v1/{_PATHS[attempt.op]}")
        version = quote(self.settings.api_version or DEFAULT_API_VERSION, safe="")
        deployment = quote(attempt.model, safe="")
        return join_url(resource, f"openai/deployments/{deployment}/{_PATHS[attempt.op]}?api-version={version}")

    def key_headers(self, key: str | None) -> dict[str, str]:
        return {"api-key": key} if key else {}

    async def list_models(self, key: str | None) -> list[str]:
        raise UnsupportedByProvider(f"provider {self.name!r}: Azure OpenAI does not list deployments")


class AzureResponsesAdapter(AzureAdapter):
    """An azure provider on the v1 API with `responses: native`: `/v1/responses` goes to Azure's own."""

    ops: ClassVar[frozenset[Op]] = frozenset({"chat", "embeddings", "responses"})
