"""Routing's parts on their own: chains, keys, breakers, backoff, Retry-After."""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any

import pytest

from llm_proxy.health import Health
from llm_proxy.keys import KeyPool
from llm_proxy.providers._registry import build_adapters
from llm_proxy.routing import Router, UnknownModel
from llm_proxy.upstream import Upstream, retry_after
from toolpolicy.settings import GatewaySettings, LlmSettings, ProviderSettings
from toolpolicy.types import ModelTarget


def router(**llm: Any) -> Router:
    settings = GatewaySettings.model_validate(
        {
            "providers": {"a": {"kind": "echo"}, "b": {"kind": "openai", "keys": [{"value": "k"}]}},
            "models": {"fast": {"targets": ["a/one", "b/two"]}, "slow": {"targets": ["b/two", "a/three"]}},
            "llm": llm,
        }
    )
    return Router(settings, build_adapters(settings.providers, Upstream(settings.llm)), rng=random.Random(1))


def test_aliases_and_fallbacks_expand_into_one_ordered_chain_without_repeats() -> None:
    chain = router().targets("fast", ["slow", "b/two", "a/four"])
    assert [target.name for target in chain] == ["a/one", "b/two", "a/three", "a/four"]


@pytest.mark.parametrize(
    ("requested", "fallbacks", "param"),
    [("c/x", [], "model"), ("fast", ["a/ok", "nope"], "fallbacks[1]"), ("a/", [], "model")],
)
def test_an_unknown_name_is_a_404_naming_where_it_was(requested: str, fallbacks: list[str], param: str) -> None:
    with pytest.raises(UnknownModel) as caught:
        router().targets(requested, fallbacks)
    assert caught.value.status == 404 and caught.value.param == param


def test_a_chain_without_fallbacks_is_remembered_per_name_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = router()
    first = proxy.targets("fast", [])
    first.append(ModelTarget.parse("x/y"))  # the caller's list is its own
    assert proxy.targets("fast", []) == proxy.targets("fast", ["fast"]) == proxy._chain("fast", [])
    assert proxy.targets("fast", ["b/model"])[-1] == ModelTarget.parse("b/model")
    monkeypatch.setattr("llm_proxy.routing.CHAIN_CACHE_SIZE", 2)
    for index in range(5):
        assert proxy.targets(f"a/m{index}", []) == [ModelTarget.parse(f"a/m{index}")]
    assert len(proxy._chains) == 2
    with pytest.raises(UnknownModel):
        proxy.targets("nowhere/model", [])


def test_backoff_grows_is_capped_jittered_and_honours_retry_after() -> None:
    r = router(backoff_initial=0.5, backoff_max=4)
    assert 0.4 <= r.backoff(0, None) <= 0.6
    assert 0.8 <= r.backoff(1, None) <= 1.2
    assert 3.2 <= r.backoff(10, None) <= 4.8
    assert r.backoff(0, 2.5) == 2.5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_breaker_opens_after_consecutive_failures_and_probes_after_its_cooldown() -> None:
    clock = Clock()
    health = Health(LlmSettings(breaker_failures=3, breaker_cooldown=30), clock)
    health.failed("p")
    health.failed("p")
    health.succeeded("p")
    health.failed("p")
    health.failed("p")
    assert health.available("p")
    health.failed("p")
    assert not health.available("p") and health.summary() == {"p": "circuit open"}
    clock.now += 31
    assert health.available("p")  # half-open: a probe goes through
    health.failed("p")
    assert not health.available("p")  # the probe failed: open again
    clock.now += 31
    health.succeeded("p")
    assert health.available("p") and health.summary() == {}


def test_a_cooled_key_comes_back_after_its_cooldown() -> None:
    clock = Clock()
    health = Health(LlmSettings(), clock)
    health.cool("p#0", 60)
    assert not health.available("p#0")
    clock.now += 61
    assert health.available("p#0")


def test_key_choice_respects_models_exclusions_and_avoidance() -> None:
    settings = ProviderSettings.model_validate(
        {
            "kind": "openai",
            "keys": [{"value": "k0", "models": ["gpt-4o*"]}, {"value": "k1"}, {"value": ""}, {"value": "k3"}],
        }
    )
    pool = KeyPool("p", settings, needs_key=True)
    health, rng = Health(LlmSettings()), random.Random(3)
    assert [key.name for key in pool.keys] == ["p#0", "p#1", "p#3"]
    picks = {pool.choose("o3", health, rng, exclude=set(), avoid=set()).name for _ in range(50)}  # type: ignore[union-attr]
    assert picks == {"p#1", "p#3"}
    only = pool.choose("gpt-4o", health, rng, exclude={"p#1", "p#3"}, avoid=set())
    assert only is not None and only.secret == "k0"
    avoided = {pool.choose("o3", health, rng, exclude=set(), avoid={"p#1"}).name for _ in range(20)}  # type: ignore[union-attr]
    assert avoided == {"p#3"}
    assert pool.choose("o3", health, rng, exclude={"p#1", "p#3"}, avoid=set()) is None
    assert "no key" in pool.why_none("o3") or "cooling" in pool.why_none("o3")


def test_a_provider_with_one_key_chooses_it_even_avoided_but_never_excluded_or_cooling() -> None:
    pool = KeyPool("p", ProviderSettings.model_validate({"kind": "openai", "keys": [{"value": "k0"}]}), needs_key=True)
    clock = Clock()
    health, rng = Health(LlmSettings(), clock), random.Random(3)
    state = rng.getstate()
    chosen = pool.choose("m", health, rng, exclude=set(), avoid={"p#0"})
    assert chosen is not None and chosen.name == "p#0"
    assert rng.getstate() == state  # nothing drawn: a choice of one
    assert pool.choose("m", health, rng, exclude={"p#0"}, avoid=set()) is None
    health.cool("p#0", 60)
    assert pool.choose("m", health, rng, exclude=set(), avoid=set()) is None
    clock.now += 61
    assert pool.choose("m", health, rng, exclude=set(), avoid=set()) is chosen


def test_the_keys_serving_a_model_are_worked_out_once_per_model_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ProviderSettings.model_validate(
        {"kind": "openai", "keys": [{"value": "k0", "models": ["gpt-4o*"]}, {"value": "k1", "models": ["p/o3"]}]}
    )
    pool = KeyPool("p", settings, needs_key=True)
    assert [key.name for key in pool.serving("gpt-4o-mini")] == ["p#0"]
    assert [key.name for key in pool.serving("o3")] == ["p#1"]
    assert pool.serving("gpt-4o-mini") is pool.serving("gpt-4o-mini")
    monkeypatch.setattr("llm_proxy.keys.SERVING_CACHE_SIZE", 3)
    for index in range(10):
        assert pool.serving(f"gpt-4o-{index}")[0].name == "p#0"
    assert len(pool._serving) == 3


def test_providers_without_keys_are_explained() -> None:
    needs = KeyPool("p", ProviderSettings(kind="anthropic"), needs_key=True)
    empty = KeyPool("p", ProviderSettings.model_validate({"kind": "gemini", "keys": [{"value": ""}]}), needs_key=True)
    local = KeyPool("p", ProviderSettings(kind="openai"), needs_key=False)
    assert "no API keys configured" in needs.why_none("m")
    assert "every key's value is empty" in empty.why_none("m")
    assert [key.secret for key in local.keys] == [None]


def test_retry_after_reads_seconds_milliseconds_and_dates() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    later = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 15 < (retry_after({"retry-after": later}) or 0) <= 20
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_listed_models_skip_providers_without_a_usable_key() -> None:
    settings = GatewaySettings.model_validate(
        {
            "providers": {
                "e": {"kind": "echo"},
                "o": {"kind": "openai", "keys": [{"value": ""}], "models": ["gpt-4o"]},
                "c": {"kind": "anthropic", "keys": [{"value": "k"}], "models": ["claude-x"]},
            },
            "models": {"fast": {"targets": ["o/gpt-4o", "c/claude-x"]}},
        }
    )
    r = Router(settings, build_adapters(settings.providers, Upstream(settings.llm)))
    assert [name for name, _ in r.listed_models()] == ["e/echo-1", "e/echo-embed", "c/claude-x", "fast"]
    assert ModelTarget.parse("fast").provider == ""
