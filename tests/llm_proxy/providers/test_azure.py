"""Azure OpenAI on the version-less `/openai/v1` API (`api_version: v1`), beside the dated deployment URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.llm_proxy.conftest import serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider
from toolpolicy.settings import ProviderSettings

pytestmark = pytest.mark.anyio


async def test_the_v1_api_takes_the_deployment_as_the_model_without_an_api_version(
    tmp_path: Path, mock: MockProvider
) -> None:
    providers = {
        "az": {"kind": "azure", "base_url": f"{mock.url}/openai/v1", "api_version": "v1", "keys": [{"value": "k"}]},
        "dated": {"kind": "azure", "base_url": mock.url, "keys": [{"value": "k2"}]},
    }
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        async with gateway.openai_sdk() as sdk:
            reply = await sdk.chat.completions.create(model="az/my-gpt4o", messages=[{"role": "user", "content": "hi"}])
            await sdk.embeddings.create(model="az/my-embedder", input="x")
            await sdk.chat.completions.create(model="dated/my-gpt4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "echo:hi"
    chat, embed, dated = mock.seen
    assert (chat.path, chat.query, chat.body["model"]) == ("/openai/v1/chat/completions", {}, "my-gpt4o")
    assert chat.headers["api-key"] == "k" and embed.path == "/openai/v1/embeddings"
    assert dated.path == "/openai/deployments/my-gpt4o/chat/completions" and dated.query == {
        "api-version": "2024-10-21"
    }


async def test_the_v1_api_serves_the_responses_api_natively_when_asked(tmp_path: Path, mock: MockProvider) -> None:
    provider = {
        "kind": "azure",
        "base_url": mock.url,
        "api_version": "v1",
        "responses": "native",
        "keys": [{"value": "k"}],
    }
    async with serve_gateway(settings_for(tmp_path, {"az": provider})) as gateway:
        async with gateway.openai_sdk() as sdk:
            response = await sdk.responses.create(model="az/my-gpt5", input="hello")
    assert response.output_text == "native:hello"
    assert mock.seen[0].path == "/openai/v1/responses" and mock.seen[0].body["model"] == "my-gpt5"


def test_native_responses_on_azure_needs_the_v1_api() -> None:
    with pytest.raises(ValidationError, match="azure with api_version: v1"):
        ProviderSettings.model_validate(
            {"kind": "azure", "base_url": "https://r.openai.azure.com", "responses": "native"}
        )
