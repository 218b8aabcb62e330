"""The model catalog: configured models, upstream listings fetched and refreshed on an injected clock, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import anyio
import pytest
from aiohttp import web

from llm_proxy.catalog import RETRY_AFTER_FAILURE
from llm_proxy.providers._registry import build_adapters
from llm_proxy.providers.openai import OpenAIAdapter
from llm_proxy.routing import Router
from llm_proxy.upstream import Upstream
from tests.llm_proxy.mock_provider import MockProvider, garbage, status
from toolpolicy.settings import GatewaySettings

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    client = Upstream(GatewaySettings().llm)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def router_for(upstream: Upstream, providers: dict[str, Any], clock: Clock, **llm: Any) -> Router:
    settings = GatewaySettings.model_validate({"providers": providers, "llm": llm})
    upstream.settings = settings.llm
    router = Router(settings, build_adapters(settings.providers, upstream))
    router.catalog.clock = clock
    return router


async def wait_until(condition: Callable[[], bool]) -> None:
    """A readiness wait with a generous bound (not a measure of speed)."""
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.01)


def listed(router: Router) -> list[str]:
    return [name for name, _ in router.listed_models()]


async def test_configured_models_are_listed_and_nothing_is_fetched(upstream: Upstream, mock: MockProvider) -> None:
    mock.models = ["upstream-model"]
    provider = {"kind": "openai", "base_url": f"{mock.url}/v1", "models": ["gpt-x", "gpt-y"]}
    router = router_for(upstream, {"p": provider}, Clock())
    await router.catalog.refresh_due()
    assert listed(router) == ["p/gpt-x", "p/gpt-y"]
    assert mock.listings_seen == []
    assert router.catalog.summary() == {"p": {"source": "configured", "count": 2}}


async def test_an_openai_listing_is_fetched_with_the_key_and_refreshed_when_due(
    upstream: Upstream, mock: MockProvider
) -> None:
    mock.models = ["gpt-a", "gpt-b"]
    clock = Clock()
    provider = {"kind": "openai", "base_url": f"{mock.url}/v1/", "keys": [{"value": "sk-list"}]}
    router = router_for(upstream, {"p": provider}, clock, models_refresh=300)
    assert listed(router) == []  # nothing known before the first fetch, and nothing waited for
    wait = await router.catalog.refresh_due()
    assert listed(router) == ["p/gpt-a", "p/gpt-b"]
    assert wait == 300
    assert [seen.path for seen in mock.listings_seen] == ["/v1/models"]
    assert mock.listings_seen[0].key == "sk-list"
    assert router.catalog.owners("gpt-a") == ("p",)

    mock.models = ["gpt-c"]
    clock.now += 299
    await router.catalog.refresh_due()
    assert len(mock.listings_seen) == 1 and listed(router) == ["p/gpt-a", "p/gpt-b"]  # not due yet
    clock.now += 1
    await router.catalog.refresh_due()
    assert listed(router) == ["p/gpt-c"]
    assert router.catalog.owners("gpt-a") == ()
    assert router.catalog.summary() == {"p": {"source": "upstream", "count": 1}}


async def test_a_failed_fetch_keeps_the_last_listing_and_retries_sooner(
    upstream: Upstream, mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    mock.models = ["kept"]
    clock = Clock()
    router = router_for(upstream, {"p": {"kind": "openai", "base_url": f"{mock.url}/v1"}}, clock, models_refresh=600)
    await router.catalog.refresh_due()
    mock.queue_listing(status(500, "listing broke"), garbage(), status(503))
    clock.now += 600
    with caplog.at_level("INFO", logger="llm_proxy.catalog"):
        assert await router.catalog.refresh_due() == RETRY_AFTER_FAILURE
        clock.now += RETRY_AFTER_FAILURE
        assert await router.catalog.refresh_due() == 2 * RETRY_AFTER_FAILURE
    assert listed(router) == ["p/kept"]
    summary = router.catalog.summary()["p"]
    assert summary == {"source": "upstream", "count": 1, "error": "upstream_bad_response"}
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "listing broke" in warnings[0].getMessage()
    assert "keeping its last listing (1 models)" in warnings[0].getMessage()
    clock.now += 2 * RETRY_AFTER_FAILURE
    await router.catalog.refresh_due()  # 503
    mock.models = ["fresh"]
    clock.now += 4 * RETRY_AFTER_FAILURE
    await router.catalog.refresh_due()
    assert listed(router) == ["p/fresh"] and "error" not in router.catalog.summary()["p"]
    assert len(mock.listings_seen) == 5


class DefaultsAdapter(OpenAIAdapter):
    default_models: ClassVar[tuple[str, ...]] = ("fallback-model",)


async def test_before_any_good_listing_the_default_models_are_listed(upstream: Upstream, mock: MockProvider) -> None:
    settings = GatewaySettings.model_validate({"providers": {"p": {"kind": "openai", "base_url": f"{mock.url}/v1"}}})
    router = Router(settings, {"p": DefaultsAdapter("p", settings.providers["p"], upstream)})
    router.catalog.clock = Clock()
    mock.queue_listing(status(404, "no listing here"))
    await router.catalog.refresh_due()
    assert listed(router) == ["p/fallback-model"]
    assert router.catalog.summary()["p"]["error"] == "HTTP 404"
    assert router.catalog.summary()["p"]["source"] == "default"


async def test_a_fetch_slower_than_models_timeout_fails_and_the_listing_stays(
    upstream: Upstream, mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    released = asyncio.Event()

    async def silent(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await released.wait()
        return web.json_response({"data": []})

    mock.models = ["before"]
    clock = Clock()
    router = router_for(upstream, {"p": {"kind": "openai", "base_url": f"{mock.url}/v1"}}, clock, models_timeout=0.2)
    await router.catalog.refresh_due()
    mock.queue_listing(silent)
    clock.now += 600
    await router.catalog.refresh_due()
    released.set()
    assert listed(router) == ["p/before"]
    assert router.catalog.summary()["p"]["error"] == "timeout"
    assert any("models_timeout (0.2 s)" in record.getMessage() for record in caplog.records)


async def test_anthropic_listings_are_followed_page_by_page_at_any_base_url_form(
    upstream: Upstream, mock: MockProvider
) -> None:
    mock.models = [f"claude-{index}" for index in range(5)]
    mock.page_size = 2
    providers = {
        name: {"kind": "anthropic", "base_url": base, "keys": [{"value": "sk-ant"}]}
        for name, base in [("bare", mock.url), ("v1", f"{mock.url}/v1"), ("slash", f"{mock.url}/v1//")]
    }
    router = router_for(upstream, providers, Clock())
    await router.catalog.refresh_due()
    for name in providers:
        assert router.catalog.models(name) == tuple(mock.models)
    assert {seen.path for seen in mock.listings_seen} == {"/v1/models"}
    assert len(mock.listings_seen) == 9  # three pages each
    first, second = mock.listings_seen[0], next(s for s in mock.listings_seen if "after_id" in s.query)
    assert first.headers["x-api-key"] == "sk-ant" and first.headers["anthropic-version"]
    assert second.query["after_id"] == "claude-1"


async def test_gemini_listings_drop_the_models_prefix_and_models_that_cannot_answer(
    upstream: Upstream, mock: MockProvider
) -> None:
    mock.models = ["gemini-a", "gemini-b", "gemini-c"]
    mock.page_size = 2
    providers = {"g": {"kind": "gemini", "base_url": mock.url, "keys": [{"value": "gk"}]}}
    router = router_for(upstream, providers, Clock())
    await router.catalog.refresh_due()
    assert router.catalog.models("g") == ("gemini-a", "gemini-b", "gemini-c")
    assert [seen.path for seen in mock.listings_seen] == ["/v1beta/models", "/v1beta/models"]
    assert mock.listings_seen[1].query["pageToken"] == "gemini-b"
    assert mock.listings_seen[0].key == "gk"


async def test_kinds_without_a_listing_and_a_zero_interval_fetch_nothing(
    upstream: Upstream, mock: MockProvider
) -> None:
    mock.models = ["never"]
    providers = {
        "az": {"kind": "azure", "base_url": mock.url, "keys": [{"value": "k"}], "models": ["my-deployment"]},
        "az2": {"kind": "azure", "base_url": mock.url, "keys": [{"value": "k"}]},
        "echo": {"kind": "echo"},
    }
    router = router_for(upstream, providers, Clock())
    await router.catalog.refresh_due()
    assert listed(router) == ["az/my-deployment", "echo/echo-1", "echo/echo-embed"]
    off = router_for(upstream, {"p": {"kind": "openai", "base_url": f"{mock.url}/v1"}}, Clock(), models_refresh=0)
    await off.catalog.refresh_due()
    off.catalog.start()  # nothing to refresh: no task
    await off.catalog.stop()
    assert mock.listings_seen == [] and listed(off) == []


async def test_a_provider_without_a_usable_key_is_neither_fetched_nor_listed(
    upstream: Upstream, mock: MockProvider
) -> None:
    mock.models = ["claude-x"]
    providers = {"c": {"kind": "anthropic", "base_url": mock.url, "keys": [{"value": ""}]}}
    router = router_for(upstream, providers, Clock())
    await router.catalog.refresh_due()
    assert mock.listings_seen == [] and listed(router) == [] and router.catalog.owners("claude-x") == ()


async def test_the_background_task_fetches_without_being_awaited(upstream: Upstream, mock: MockProvider) -> None:
    mock.models = ["bg-model"]
    router = router_for(upstream, {"p": {"kind": "openai", "base_url": f"{mock.url}/v1"}}, Clock())
    router.catalog.clock = time.monotonic
    router.catalog.start()
    try:
        await wait_until(lambda: listed(router) == ["p/bg-model"])
    finally:
        await router.catalog.stop()
