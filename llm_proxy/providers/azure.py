"""Azure OpenAI: OpenAI's wire format at a deployment URL, with `api-version` and an `api-key` header.

The model name of a target is the deployment name: `azure/my-gpt4o-deployment`.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from llm_proxy.errors import UnsupportedByProvider
from llm_proxy.providers.base import Attempt, join_url
from llm_proxy.providers.openai import OpenAIAdapter

DEFAULT_API_VERSION = "2024-10-21"
_PATHS = {"chat": "chat/completions", "embeddings": "embeddings"}


class AzureAdapter(OpenAIAdapter):
    kind: ClassVar[str] = "azure"
    needs_key: ClassVar[bool] = True
    lists_models: ClassVar[bool] = False
    """Azure's data plane lists the resource's base models, not the deployment names requests must use: an azure
    provider lists its configured `models:` (deployments) only."""

    def url(self, attempt: Attempt) -> str:
        version = quote(self.settings.api_version or DEFAULT_API_VERSION, safe="")
        deployment = quote(attempt.model, safe="")
        path = f"openai/deployments/{deployment}/{_PATHS[attempt.op]}?api-version={version}"
        # Both https://<resource>.openai.azure.com and .../openai are accepted as base_url.
        return join_url(self.base_url.rstrip("/").removesuffix("/openai"), path)

    def key_headers(self, key: str | None) -> dict[str, str]:
        return {"api-key": key} if key else {}

    async def list_models(self, key: str | None) -> list[str]:
        raise UnsupportedByProvider(f"provider {self.name!r}: Azure OpenAI does not list deployments")
