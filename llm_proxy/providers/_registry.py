"""Provider adapters by `kind`: adding a provider means adding its module and one line here."""

from __future__ import annotations

from llm_proxy.providers.anthropic import AnthropicAdapter
from llm_proxy.providers.azure import AzureAdapter, AzureResponsesAdapter
from llm_proxy.providers.base import ProviderAdapter
from llm_proxy.providers.bedrock import BedrockAdapter
from llm_proxy.providers.echo import EchoAdapter
from llm_proxy.providers.gemini import GeminiAdapter
from llm_proxy.providers.openai import OpenAIAdapter, OpenAIResponsesAdapter
from llm_proxy.providers.presets import PRESET_ADAPTERS
from llm_proxy.providers.vertex import VertexAdapter
from llm_proxy.upstream import Upstream
from toolpolicy.settings import ProviderSettings

PROVIDERS: dict[str, type[ProviderAdapter]] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "azure": AzureAdapter,
    "bedrock": BedrockAdapter,
    "vertex": VertexAdapter,
    "echo": EchoAdapter,
    **PRESET_ADAPTERS,
}


def build_adapters(providers: dict[str, ProviderSettings], upstream: Upstream) -> dict[str, ProviderAdapter]:
    """One adapter per configured provider, by the provider's name."""
    return {name: _adapter_class(settings)(name, settings, upstream) for name, settings in providers.items()}


def _adapter_class(settings: ProviderSettings) -> type[ProviderAdapter]:
    """The kind's adapter; an `openai` (or azure v1) provider whose server has the Responses API also speaks
    `responses`."""
    if settings.native_responses:
        return AzureResponsesAdapter if settings.kind == "azure" else OpenAIResponsesAdapter
    return PROVIDERS[settings.kind]
