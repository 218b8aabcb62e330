"""A provider's API keys: weighted random choice among the keys that serve the model and are not skipped."""

from __future__ import annotations

import random
from dataclasses import dataclass

from llm_proxy.health import Health
from toolpolicy.globs import GlobSet
from toolpolicy.settings import ProviderSettings

SERVING_CACHE_SIZE = 1024
"""Models whose serving keys a pool remembers; the model name comes from requests, so past this many it works
further ones out each time."""


@dataclass(frozen=True, slots=True)
class PoolKey:
    name: str
    """`provider#index`: how health tracking and logs refer to the key (never its value)."""
    secret: str | None
    weight: float
    models: GlobSet | None

    def serves(self, provider: str, model: str) -> bool:
        return self.models is None or self.models.matches(model) or self.models.matches(f"{provider}/{model}")


class KeyPool:
    """The keys of one provider. A provider that needs no key and lists none gets one key-less slot."""

    def __init__(self, provider: str, settings: ProviderSettings, *, needs_key: bool) -> None:
        self.provider = provider
        self.keys: list[PoolKey] = []
        self.problem = ""
        self._serving: dict[str, tuple[PoolKey, ...]] = {}
        """The keys that serve each model, in configured order: they depend on the config alone."""
        if not settings.keys and not needs_key:
            self.keys.append(PoolKey(f"{provider}#0", None, 1.0, None))
            return
        for index, key in enumerate(settings.keys):
            secret = key.value.get_secret_value()
            if secret:
                models = GlobSet.of(key.models) if key.models is not None else None
                self.keys.append(PoolKey(f"{provider}#{index}", secret, key.weight, models))
        if not settings.keys:
            self.problem = f"provider {provider!r} has no API keys configured"
        elif not self.keys:
            self.problem = f"provider {provider!r} has no API key set (every key's value is empty)"

    def choose(
        self, model: str, health: Health, rng: random.Random, *, exclude: set[str], avoid: set[str]
    ) -> PoolKey | None:
        """A key for `model`, by weight; keys in `avoid` only when nothing else is left, `exclude` never."""
        serving = self.serving(model)
        if len(serving) == 1:  # most providers have one key: no lists to build to choose it
            only = serving[0]
            return only if only.name not in exclude and health.available(only.name) else None
        candidates = [key for key in serving if key.name not in exclude and health.available(key.name)]
        preferred = [key for key in candidates if key.name not in avoid] or candidates
        if not preferred:
            return None
        if len(preferred) == 1:
            return preferred[0]
        return rng.choices(preferred, weights=[key.weight for key in preferred])[0]

    def serving(self, model: str) -> tuple[PoolKey, ...]:
        """The keys that serve `model`, in configured order."""
        keys = self._serving.get(model)
        if keys is None:
            keys = tuple(key for key in self.keys if key.serves(self.provider, model))
            if len(self._serving) < SERVING_CACHE_SIZE:
                self._serving[model] = keys
        return keys

    def why_none(self, model: str) -> str:
        if self.problem:
            return self.problem
        if not any(key.serves(self.provider, model) for key in self.keys):
            return f"no key of provider {self.provider!r} serves model {model!r}"
        return f"every key of provider {self.provider!r} is cooling down or failing"
