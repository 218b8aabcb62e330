"""Bare model names: a name exactly one provider lists routes without its `provider/` prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from llm_proxy.providers._registry import build_adapters
from llm_proxy.routing import AmbiguousModel, Router
from llm_proxy.upstream import Upstream
from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider, status
from toolpolicy.errors import ModelNotAllowed
from toolpolicy.globs import GlobSet
from toolpolicy.settings import GatewaySettings
from toolpolicy.types import Principal

pytestmark = pytest.mark.anyio

PROVIDERS: dict[str, Any] = {
    "oai": {"kind": "openai", "models": ["gpt-4o", "shared"]},
    "groq": {"kind": "openai", "models": ["llama-3", "shared"]},
    "router": {"kind": "openai", "models": ["openai/gpt-4o", "anthropic/claude-x"]},
    "nokey": {"kind": "anthropic", "keys": [{"value": ""}], "models": ["claude-only-here"]},
}


def router() -> Router:
    settings = GatewaySettings.model_validate(
        {
            "providers": PROVIDERS,
            "models": {"shared-alias": {"targets": ["oai/gpt-4o"]}, "llama-3": {"targets": ["oai/gpt-4o"]}},
        }
    )
    return Router(settings, build_adapters(settings.providers, Upstream(settings.llm)))


def key(*models: str) -> Principal:
    return Principal("k1", "tester", models=GlobSet.of(models))


ANYTHING = key("*")


@pytest.mark.parametrize(
    ("requested", "resolved"),
    [
        ("gpt-4o", "oai/gpt-4o"),  # one provider lists it
        ("oai/gpt-4o", "oai/gpt-4o"),  # already addressed
        ("llama-3", "llama-3"),  # an alias of that name wins over the listing
        ("openai/gpt-4o", "router/openai/gpt-4o"),  # not a provider: the whole name is what `router` lists
        ("anthropic/claude-x", "router/anthropic/claude-x"),
        ("openai/o3", "openai/o3"),  # listed by no one: left to be reported unknown, as before
        ("claude-only-here", "claude-only-here"),  # its provider has no usable key: it cannot answer
        ("unlisted", "unlisted"),
    ],
)
def test_a_name_one_provider_lists_resolves_to_it(requested: str, resolved: str) -> None:
    assert router().resolve(requested, ANYTHING) == resolved


def test_an_ambiguous_name_is_a_400_naming_the_candidates_the_key_may_use() -> None:
    with pytest.raises(AmbiguousModel) as caught:
        router().resolve("shared", ANYTHING, param="fallbacks[1]")
    assert caught.value.status == 400 and caught.value.code == "ambiguous_model"
    assert caught.value.param == "fallbacks[1]"
    assert "oai/shared, groq/shared" in caught.value.message
    # The allowlist narrows the candidates first: one usable candidate is no ambiguity; none is a refusal of the
    # bare name that names no provider, even for an allowlist entry of the bare name itself.
    assert router().resolve("shared", key("groq/*")) == "groq/shared"
    for allowlist in ("shared", "nothing/*"):
        with pytest.raises(ModelNotAllowed) as refused:
            router().resolve("shared", key(allowlist))
        assert refused.value.message == "key 'tester' may not use model 'shared'" and refused.value.param == "model"


@pytest.fixture
async def pair(tmp_path: Path, mock: MockProvider) -> Any:
    """Two providers over the mock, with configured models (known at start): `alpha` (OpenAI's API) lists
    `alpha-model` and `both`, `beta` (Anthropic's) `beta-model` and `both`."""
    base = f"{mock.url}/v1"
    providers = {
        "alpha": {"kind": "openai", "base_url": base, "keys": [{"value": "sk-a"}], "models": ["alpha-model", "both"]},
        "beta": {
            "kind": "anthropic",
            "base_url": mock.url,
            "keys": [{"value": "sk-b"}],
            "models": ["beta-model", "both"],
        },
    }
    keys = [
        {"name": "all", "team": "dev", "value": KEY, "models": ["*"]},
        {"name": "alpha-only", "team": "dev", "value": "isk-alpha-only", "models": ["alpha/*"]},
        {"name": "bare", "team": "dev", "value": "isk-bare-entry", "models": ["alpha-model"]},
    ]
    async with serve_gateway(settings_for(tmp_path, providers, virtual_keys=keys)) as started:
        yield started


async def test_sdks_route_a_bare_name_and_the_audit_names_the_resolved_model(pair: Gateway, mock: MockProvider) -> None:
    async with openai.AsyncOpenAI(base_url=pair.v1, api_key=KEY, max_retries=0) as sdk:
        completion = await sdk.chat.completions.with_raw_response.create(
            model="alpha-model", messages=[{"role": "user", "content": "hi"}]
        )
    async with anthropic.AsyncAnthropic(base_url=pair.url, api_key=KEY, max_retries=0) as claude:
        message = await claude.messages.create(
            model="beta-model", max_tokens=16, messages=[{"role": "user", "content": "hey"}]
        )
    assert completion.headers["x-isthmus-route"] == "alpha/alpha-model"
    assert completion.parse().choices[0].message.content == "echo:hi"
    assert message.content[0].text == "echo:hey"  # type: ignore[union-attr]
    assert [(seen.path, seen.body["model"]) for seen in mock.seen] == [
        ("/v1/chat/completions", "alpha-model"),
        ("/v1/messages", "beta-model"),
    ]
    records = await pair.wait_records(2)
    assert [record.target for record in records] == ["alpha/alpha-model", "beta/beta-model"]


async def test_an_ambiguous_name_is_refused_in_each_apis_envelope(pair: Gateway, mock: MockProvider) -> None:
    async with openai.AsyncOpenAI(base_url=pair.v1, api_key=KEY, max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as chat:
            await sdk.chat.completions.create(model="both", messages=[{"role": "user", "content": "x"}])
    async with anthropic.AsyncAnthropic(base_url=pair.url, api_key=KEY, max_retries=0) as claude:
        with pytest.raises(anthropic.BadRequestError) as messages:
            await claude.messages.create(model="both", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    error = chat.value.body
    assert isinstance(error, dict) and error["code"] == "ambiguous_model" and error["param"] == "model"
    assert "alpha/both" in error["message"] and "beta/both" in error["message"]
    assert messages.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": error["message"]},
    }
    assert mock.seen == []


async def test_the_allowlist_judges_the_resolved_name(pair: Gateway, mock: MockProvider) -> None:
    async with openai.AsyncOpenAI(base_url=pair.v1, api_key="isk-alpha-only", max_retries=0) as sdk:
        narrowed = await sdk.chat.completions.create(model="both", messages=[{"role": "user", "content": "a"}])
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await sdk.chat.completions.create(model="beta-model", messages=[{"role": "user", "content": "b"}])
    async with openai.AsyncOpenAI(base_url=pair.v1, api_key="isk-bare-entry", max_retries=0) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as bare:
            await sdk.chat.completions.create(model="alpha-model", messages=[{"role": "user", "content": "c"}])
    # `both` is ambiguous, but only `alpha/both` is usable by this key; `beta-model` stays bare and is refused
    # without naming its provider; an allowlist entry of the bare name does not allow the resolved model.
    assert narrowed.choices[0].message.content == "echo:a"
    assert [seen.body["model"] for seen in mock.seen] == ["both"]
    assert "'beta-model'" in refused.value.message and "beta/" not in refused.value.message
    assert "'alpha-model'" in bare.value.message and "alpha/" not in bare.value.message


async def test_a_bare_fallback_resolves_too(pair: Gateway, mock: MockProvider) -> None:
    mock.queue(status(404, "no such model"))
    async with openai.AsyncOpenAI(base_url=pair.v1, api_key=KEY, max_retries=0) as sdk:
        completion = await sdk.chat.completions.with_raw_response.create(
            model="alpha/missing",
            messages=[{"role": "user", "content": "f"}],
            extra_body={"fallbacks": ["beta-model"]},
        )
        with pytest.raises(openai.BadRequestError) as ambiguous:
            await sdk.chat.completions.create(
                model="alpha-model", messages=[{"role": "user", "content": "f"}], extra_body={"fallbacks": ["both"]}
            )
    assert completion.headers["x-isthmus-route"] == "beta/beta-model"
    assert isinstance(ambiguous.value.body, dict) and ambiguous.value.body["param"] == "fallbacks[0]"


async def test_a_name_from_a_fetched_listing_resolves(tmp_path: Path, mock: MockProvider) -> None:
    mock.models = ["served-upstream"]
    providers = {"up": {"kind": "openai", "base_url": f"{mock.url}/v1"}}
    async with serve_gateway(settings_for(tmp_path, providers)) as started:
        catalog = started.proxy.router.catalog
        await catalog.refresh("up")  # the background fetch may have run already; this one is awaited
        async with openai.AsyncOpenAI(base_url=started.v1, api_key=KEY, max_retries=0) as sdk:
            completion = await sdk.chat.completions.with_raw_response.create(
                model="served-upstream", messages=[{"role": "user", "content": "u"}]
            )
    assert completion.headers["x-isthmus-route"] == "up/served-upstream"
