"""OpenAI-compatible services known by kind: `{kind: groq, keys: [...]}` needs no `base_url`.

Each preset is data (base URL, whether a key is needed, whether the service embeds or lists its models); one
adapter class per preset is made from it below, so the registry resolves presets by kind like any other provider.
All of them authenticate with `Authorization: Bearer <key>`; the local servers (Ollama, vLLM, LM Studio) default to
their usual localhost ports and take no key, but send one when configured (vLLM's `--api-key`). Their prices are in
the shipped price table under `<kind>/<model>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from llm_proxy.providers.base import Op
from llm_proxy.providers.openai import OpenAIAdapter


@dataclass(frozen=True, slots=True)
class Preset:
    base_url: str
    """As the OpenAI SDK takes `base_url`: the API's version included."""
    local: bool = False
    """A server on the gateway's own machine by default: no key needed."""
    embeddings: bool = False
    """Whether the service has `/embeddings`."""
    lists_models: bool = True
    """Whether the service answers `GET /models`."""
    default_models: tuple[str, ...] = ()
    """Listed by `GET /v1/models` when the service lists none and the config names none."""


PRESETS: dict[str, Preset] = {  # the kinds of `toolpolicy.provider_settings.PresetKind`, one for one
    "groq": Preset("https://api.groq.com/openai/v1"),
    "mistral": Preset("https://api.mistral.ai/v1", embeddings=True),
    "together": Preset("https://api.together.xyz/v1", embeddings=True),
    "fireworks": Preset("https://api.fireworks.ai/inference/v1", embeddings=True),
    "deepseek": Preset("https://api.deepseek.com/v1"),
    "xai": Preset("https://api.x.ai/v1"),
    "openrouter": Preset("https://openrouter.ai/api/v1", embeddings=True),
    "cerebras": Preset("https://api.cerebras.ai/v1"),
    # Perplexity serves its API at the root and has no model listing.
    "perplexity": Preset(
        "https://api.perplexity.ai",
        lists_models=False,
        default_models=("sonar", "sonar-pro", "sonar-reasoning", "sonar-reasoning-pro", "sonar-deep-research"),
    ),
    "ollama": Preset("http://localhost:11434/v1", local=True, embeddings=True),
    "vllm": Preset("http://localhost:8000/v1", local=True, embeddings=True),
    "lmstudio": Preset("http://localhost:1234/v1", local=True, embeddings=True),
}


class PresetAdapter(OpenAIAdapter):
    """An OpenAI-compatible service at its preset's base URL (the config's `base_url` still wins)."""

    preset: ClassVar[Preset]


def _adapter(kind: str, preset: Preset) -> type[PresetAdapter]:
    ops: frozenset[Op] = frozenset({"chat", "embeddings"} if preset.embeddings else {"chat"})
    attributes = {
        "kind": kind,
        "preset": preset,
        "ops": ops,
        "needs_key": not preset.local,
        "default_base_url": preset.base_url,
        "lists_models": preset.lists_models,
        "default_models": preset.default_models,
    }
    return type(f"{kind.capitalize()}Adapter", (PresetAdapter,), attributes)


PRESET_ADAPTERS: dict[str, type[PresetAdapter]] = {kind: _adapter(kind, preset) for kind, preset in PRESETS.items()}
