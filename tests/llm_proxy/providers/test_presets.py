"""OpenAI-compatible presets: configured by `kind` alone (plus a key for hosted services), at their known base URLs
with a Bearer key, priced from the shipped table; `isthmus check` accepts each."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import openai
import pytest

from llm_proxy.providers._registry import PROVIDERS, build_adapters
from llm_proxy.providers.presets import PRESETS, PresetAdapter
from llm_proxy.upstream import Upstream
from tests.isthmus.test_cli import run_cli, write_config
from tests.llm_proxy.conftest import serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider
from toolpolicy.pricing import PriceTable
from toolpolicy.provider_settings import PresetKind, ProviderSettings
from toolpolicy.settings import LlmSettings
from toolpolicy.types import ModelTarget

pytestmark = pytest.mark.anyio

LOCAL = {
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
    "lmstudio": "http://localhost:1234/v1",
}
HOSTED = sorted(set(PRESETS) - set(LOCAL))
MAIN_MODELS = {
    "groq": "llama-3.3-70b-versatile",
    "mistral": "mistral-large-latest",
    "together": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "fireworks": "accounts/fireworks/models/llama-v3p3-70b-instruct",
    "deepseek": "deepseek-chat",
    "xai": "grok-4",
    "openrouter": "openai/gpt-4o",
    "cerebras": "llama-3.3-70b",
    "perplexity": "sonar-pro",
    "ollama": "llama3.2",
    "vllm": "Qwen/Qwen2.5-7B-Instruct",
    "lmstudio": "qwen2.5-7b-instruct",
}


def minimal(kind: str) -> dict[str, Any]:
    """A preset as a user writes it: the kind, and a key for hosted services."""
    return {"kind": kind} if kind in LOCAL else {"kind": kind, "keys": [{"value": f"{kind}-secret"}]}


def test_the_config_kinds_and_the_presets_are_one_list() -> None:
    assert set(PRESETS) == set(get_args(PresetKind))
    assert all(issubclass(PROVIDERS[kind], PresetAdapter) for kind in PRESETS)


@pytest.mark.parametrize("kind", sorted(PRESETS))
def test_a_preset_needs_only_its_kind_to_reach_its_service(kind: str) -> None:
    settings = ProviderSettings.model_validate(minimal(kind))
    [adapter] = build_adapters({kind: settings}, Upstream(LlmSettings())).values()
    assert adapter.kind == kind and adapter.needs_key is (kind not in LOCAL)
    assert isinstance(adapter, PresetAdapter) and adapter.base_url == PRESETS[kind].base_url
    if kind in LOCAL:
        assert adapter.base_url == LOCAL[kind]
    else:
        assert adapter.base_url.startswith("https://")
        assert adapter.key_headers(f"{kind}-secret") == {"authorization": f"Bearer {kind}-secret"}


@pytest.mark.parametrize("kind", sorted(PRESETS))
def test_each_presets_main_model_has_a_shipped_price_by_kind(kind: str) -> None:
    # The provider's own name differs from its kind: the kind finds the price.
    price = PriceTable.with_overrides({}).lookup(ModelTarget("mine", MAIN_MODELS[kind]), kind)
    assert price is not None
    assert (price.input > 0 and price.output > 0) is (kind not in LOCAL)


def test_isthmus_check_accepts_every_preset_with_only_its_kind_and_a_key(tmp_path: Path) -> None:
    entries = [
        f"  {kind}: {{kind: {kind}" + ("}" if kind in LOCAL else f", keys: [{{value: {kind}-key}}]}}")
        for kind in sorted(PRESETS)
    ]
    config = write_config(tmp_path, "\n".join(["providers:", *entries]) + "\n")
    result = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"({len(PRESETS)} providers," in result.stdout


async def test_a_hosted_preset_without_a_key_says_so_when_routed(tmp_path: Path, mock: MockProvider) -> None:
    providers = {"groq": {"kind": "groq", "base_url": f"{mock.url}/v1"}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        async with gateway.openai_sdk() as sdk:
            with pytest.raises(openai.APIStatusError) as caught:
                await sdk.chat.completions.create(model="groq/x", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503 and "provider 'groq' has no API keys configured" in str(caught.value)
    assert not mock.seen


@pytest.mark.parametrize("kind", sorted(PRESETS))
async def test_a_preset_at_an_overridden_base_url_gets_its_auth_header(
    tmp_path: Path, mock: MockProvider, kind: str
) -> None:
    provider = {**minimal(kind), "base_url": f"{mock.url}/v1"}
    async with serve_gateway(settings_for(tmp_path, {kind: provider})) as gateway:
        async with gateway.openai_sdk() as sdk:
            reply = await sdk.chat.completions.create(
                model=f"{kind}/{MAIN_MODELS[kind]}", messages=[{"role": "user", "content": "hello"}]
            )
            stream = await sdk.chat.completions.create(
                model=f"{kind}/{MAIN_MODELS[kind]}", messages=[{"role": "user", "content": "again"}], stream=True
            )
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        [record, _] = await gateway.wait_records(2)
    assert reply.choices[0].message.content == "echo:hello" and text == "echo:again"
    sent = mock.seen[0]
    assert sent.path == "/v1/chat/completions" and sent.body["model"] == MAIN_MODELS[kind]
    if kind in LOCAL:
        assert "Authorization" not in sent.headers
    else:
        assert sent.headers["Authorization"] == f"Bearer {kind}-secret"
    price = PriceTable.with_overrides({}).lookup(ModelTarget(kind, MAIN_MODELS[kind]), kind)
    assert price is not None and record.cost_usd == price.cost(11, 7)


async def test_a_preset_without_embeddings_refuses_them_for_the_next_target(tmp_path: Path, mock: MockProvider) -> None:
    providers = {"groq": {**minimal("groq"), "base_url": f"{mock.url}/v1"}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        async with gateway.openai_sdk() as sdk:
            with pytest.raises(openai.APIStatusError):
                await sdk.embeddings.create(model="groq/some-embedder", input="x")
    assert not mock.seen


async def test_a_preset_with_embeddings_serves_them(tmp_path: Path, mock: MockProvider) -> None:
    providers = {"mistral": {**minimal("mistral"), "base_url": f"{mock.url}/v1"}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        async with gateway.openai_sdk() as sdk:
            reply = await sdk.embeddings.create(model="mistral/mistral-embed", input="x", encoding_format="float")
        [record] = await gateway.wait_records(1)
    assert reply.data[0].embedding == [0.5, -0.25, 0.0]
    assert mock.seen[0].path == "/v1/embeddings" and mock.seen[0].headers["Authorization"] == "Bearer mistral-secret"
    assert record.cost_usd == Decimal("0.1") * 5 / 1_000_000
