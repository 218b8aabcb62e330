"""A gateway with the response cache over the OpenAI- and Anthropic-compatible mock, and a clock tests move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.llm_proxy.cache.word_embedder import WordEmbedder
from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider

OTHER_KEY = "isk-llm-other-team-key"
"""A key of the same customer, another team."""
SAME_TEAM_KEY = "isk-llm-same-team-key"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cache_settings(
    tmp_path: Path,
    mock: MockProvider,
    cache: dict[str, Any],
    *,
    more_providers: dict[str, Any] | None = None,
    **overrides: Any,
) -> Any:
    providers = {
        "mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]},
        "claude": {"kind": "anthropic", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-ant"}]},
        **(more_providers or {}),
    }
    data: dict[str, Any] = {
        "models": {"fast": {"targets": ["mock/fast-model"]}},
        "teams": [{"name": "dev", "customer": "acme"}, {"name": "ops", "customer": "acme"}],
        "virtual_keys": [
            {"name": "dev-key", "team": "dev", "value": KEY, "models": ["*"]},
            {"name": "dev-two", "team": "dev", "value": SAME_TEAM_KEY, "models": ["*"]},
            {"name": "ops-key", "team": "ops", "value": OTHER_KEY, "models": ["*"]},
        ],
        "cache": cache,
    }
    data.update(overrides)
    return settings_for(tmp_path, providers, **data)


Serve = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def use_clock(gateway: Gateway, clock: Clock) -> None:
    cache = gateway.proxy.response_cache
    assert cache is not None
    cache.clock = cache.memory.clock = clock


@pytest.fixture
async def cached(tmp_path: Path, mock: MockProvider, clock: Clock) -> AsyncIterator[Gateway]:
    """Scope `key`, one hour, no skip rules."""
    async with serve_gateway(cache_settings(tmp_path, mock, {"ttl": "1h"})) as gateway:
        use_clock(gateway, clock)
        yield gateway


@pytest.fixture
async def embedder() -> AsyncIterator[WordEmbedder]:
    """The word-overlap embedding provider (`word_embedder`)."""
    server = WordEmbedder()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
