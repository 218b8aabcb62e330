"""`GET /v1/models` through the official SDKs: what the providers actually serve, filtered by the key, never
waiting on an upstream's listing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import anyio
import openai
import pytest
from aiohttp import web

from tests.llm_proxy.conftest import KEY, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider

pytestmark = pytest.mark.anyio

NARROW_KEY = "isk-narrow-models"


async def wait_until(condition: Callable[[], bool]) -> None:
    """A readiness wait with a generous bound (not a measure of speed)."""
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.01)


def providers_over(mock: MockProvider) -> dict[str, Any]:
    return {
        "oai": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-o"}]},
        "claude": {"kind": "anthropic", "base_url": mock.url, "keys": [{"value": "sk-c"}]},
        "fixed": {"kind": "openai", "base_url": f"{mock.url}/v1", "models": ["configured-1"]},
    }


async def test_both_sdks_list_the_fetched_and_configured_models_the_key_may_use(
    tmp_path: Path, mock: MockProvider
) -> None:
    mock.models = ["m-1", "m-2"]
    keys = [
        {"name": "all", "team": "dev", "value": KEY, "models": ["*"]},
        {"name": "narrow", "team": "dev", "value": NARROW_KEY, "models": ["claude/*", "fixed/*"]},
    ]
    settings = settings_for(
        tmp_path, providers_over(mock), virtual_keys=keys, models={"quick": {"targets": ["oai/m-1"]}}
    )
    async with serve_gateway(settings) as gateway:
        catalog = gateway.proxy.router.catalog
        await wait_until(lambda: all(s["source"] != "default" for s in catalog.summary().values()))
        async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
            everything = [(model.id, model.owned_by) async for model in sdk.models.list()]
        async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key=NARROW_KEY, max_retries=0) as claude:
            narrow = [model.id async for model in claude.models.list()]
        ready = gateway.proxy.readiness()["models"]
    assert everything == [
        ("oai/m-1", "oai"),
        ("oai/m-2", "oai"),
        ("claude/m-1", "claude"),
        ("claude/m-2", "claude"),
        ("fixed/configured-1", "fixed"),
        ("quick", "isthmus"),
    ]
    assert narrow == ["claude/m-1", "claude/m-2", "fixed/configured-1"]
    assert ready == {
        "oai": {"source": "upstream", "count": 2},
        "claude": {"source": "upstream", "count": 2},
        "fixed": {"source": "configured", "count": 1},
    }
    assert {seen.path for seen in mock.listings_seen} == {"/v1/models"}
    assert {seen.key for seen in mock.listings_seen} == {"sk-o", "sk-c"}


async def test_a_slow_upstream_listing_delays_neither_start_up_nor_the_listing(
    tmp_path: Path, mock: MockProvider
) -> None:
    release = asyncio.Event()
    asked = asyncio.Event()

    async def held(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        asked.set()
        await release.wait()
        return web.json_response({"data": [{"id": "late-model"}]})

    mock.queue_listing(held)
    providers = {"slow": {"kind": "openai", "base_url": f"{mock.url}/v1"}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        # The gateway started and answers while the upstream still holds its listing.
        await wait_until(asked.is_set)
        async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
            before = [model.id async for model in sdk.models.list()]
            release.set()
            catalog = gateway.proxy.router.catalog
            await wait_until(lambda: catalog.summary()["slow"]["source"] == "upstream")
            after = [model.id async for model in sdk.models.list()]
    assert before == [] and after == ["slow/late-model"]
