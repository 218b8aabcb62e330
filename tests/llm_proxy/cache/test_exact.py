"""The exact cache: hits with no provider call, misses across keys, scopes, models and parameters, the request
headers, skip rules, a key's own setting, TTL on an injected clock, and what a hit costs and records."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.llm_proxy.cache.conftest import OTHER_KEY, SAME_TEAM_KEY, Clock, cache_settings, use_clock
from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway
from tests.llm_proxy.mock_provider import MockProvider

pytestmark = pytest.mark.anyio


def chat_body(text: str = "hello", **more: Any) -> dict[str, Any]:
    return {"model": "mock/gpt-test", "messages": [{"role": "user", "content": text}], **more}


async def post(gateway: Gateway, path: str, body: dict[str, Any], key: str, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=gateway.url, timeout=10) as http:
        return await http.post(path, json=body, headers={"authorization": f"Bearer {key}", **headers})


async def chat(gateway: Gateway, body: dict[str, Any], key: str = KEY, **headers: str) -> httpx2.Response:
    return await post(gateway, "/v1/chat/completions", body, key, headers)


async def test_a_repeated_request_is_answered_from_the_cache_without_a_provider_call(
    cached: Gateway, mock: MockProvider
) -> None:
    first = await chat(cached, chat_body())
    second = await chat(cached, chat_body())
    assert first.status_code == second.status_code == 200
    assert first.headers["x-isthmus-cache"] == "miss"
    assert second.headers["x-isthmus-cache"] == "hit"
    assert len(mock.seen) == 1
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["id"] != first.json()["id"]
    assert second.headers["x-isthmus-route"] == "mock/gpt-test"


async def test_excluded_fields_do_not_split_entries(cached: Gateway, mock: MockProvider) -> None:
    await chat(cached, chat_body(user="a", metadata={"x": "1"}))
    hit = await chat(cached, chat_body(user="b"))
    assert hit.headers["x-isthmus-cache"] == "hit"
    assert len(mock.seen) == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"temperature": 0.3},
        {"max_tokens": 50},
        {"top_p": 0.5},
        {"n": 2},
        {"stop": ["x"]},
        {"seed": 4},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]},
        {"model": "mock/other-model"},
        {"messages": [{"role": "user", "content": "hello!"}]},
    ],
)
async def test_a_different_parameter_or_model_never_hits(
    cached: Gateway, mock: MockProvider, changed: dict[str, Any]
) -> None:
    await chat(cached, chat_body())
    other = await chat(cached, {**chat_body(), **changed})
    assert other.status_code == 200, other.text
    assert other.headers["x-isthmus-cache"] == "miss"
    assert len(mock.seen) == 2


async def test_an_alias_keeps_entries_of_its_own(tmp_path: Path, mock: MockProvider) -> None:
    """An alias may fail over to other targets: its entries are the alias's, not one target's."""
    settings = cache_settings(tmp_path, mock, {})
    async with serve_gateway(settings) as gateway:
        await chat(gateway, {**chat_body(), "model": "fast"})
        assert (await chat(gateway, {**chat_body(), "model": "fast"})).headers["x-isthmus-cache"] == "hit"
        target = await chat(gateway, {**chat_body(), "model": "mock/fast-model"})
        assert target.headers["x-isthmus-cache"] == "miss"


async def test_scope_key_isolates_keys_even_of_one_team(cached: Gateway, mock: MockProvider) -> None:
    await chat(cached, chat_body())
    other = await chat(cached, chat_body(), key=SAME_TEAM_KEY)
    assert other.headers["x-isthmus-cache"] == "miss"
    assert len(mock.seen) == 2


@pytest.mark.parametrize(("scope", "shared", "isolated"), [("team", SAME_TEAM_KEY, OTHER_KEY)])
async def test_scope_team_shares_within_a_team_only(
    tmp_path: Path, mock: MockProvider, scope: str, shared: str, isolated: str
) -> None:
    async with serve_gateway(cache_settings(tmp_path, mock, {"scope": scope})) as gateway:
        await chat(gateway, chat_body())
        assert (await chat(gateway, chat_body(), key=shared)).headers["x-isthmus-cache"] == "hit"
        assert (await chat(gateway, chat_body(), key=isolated)).headers["x-isthmus-cache"] == "miss"


async def test_scope_customer_shares_across_its_teams(tmp_path: Path, mock: MockProvider) -> None:
    async with serve_gateway(cache_settings(tmp_path, mock, {"scope": "customer"})) as gateway:
        await chat(gateway, chat_body())
        assert (await chat(gateway, chat_body(), key=OTHER_KEY)).headers["x-isthmus-cache"] == "hit"
        assert len(mock.seen) == 1


async def test_no_cache_skips_the_read_but_writes(cached: Gateway, mock: MockProvider) -> None:
    await chat(cached, chat_body())
    fresh = await chat(cached, chat_body(), **{"x-isthmus-cache": "no-cache"})
    assert fresh.headers["x-isthmus-cache"] == "bypass"
    assert len(mock.seen) == 2
    assert (await chat(cached, chat_body())).headers["x-isthmus-cache"] == "hit"


async def test_no_store_reads_but_never_writes(cached: Gateway, mock: MockProvider) -> None:
    first = await chat(cached, chat_body(), **{"x-isthmus-cache": "no-store"})
    assert first.headers["x-isthmus-cache"] == "miss"
    assert (await chat(cached, chat_body())).headers["x-isthmus-cache"] == "miss"
    assert (await chat(cached, chat_body(), **{"x-isthmus-cache": "no-store"})).headers["x-isthmus-cache"] == "hit"
    assert len(mock.seen) == 2


async def test_refresh_drops_the_entry_and_stores_the_new_answer(cached: Gateway, mock: MockProvider) -> None:
    await chat(cached, chat_body())
    mock.queue(None)
    refreshed = await chat(cached, chat_body(), **{"x-isthmus-cache": "refresh"})
    assert refreshed.headers["x-isthmus-cache"] == "bypass"
    again = await chat(cached, chat_body())
    assert again.headers["x-isthmus-cache"] == "hit"
    assert again.json()["choices"] == refreshed.json()["choices"]
    assert len(mock.seen) == 2


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-isthmus-cache", "sometimes"), ("x-isthmus-cache-ttl", "0"), ("x-isthmus-cache-ttl", "999999999")],
)
async def test_bad_cache_headers_answer_400_naming_the_header(cached: Gateway, header: str, value: str) -> None:
    response = await chat(cached, chat_body(), **{header: value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == header


async def test_entries_expire_on_the_injected_clock(cached: Gateway, mock: MockProvider, clock: Clock) -> None:
    await chat(cached, chat_body())
    await chat(cached, chat_body("short"), **{"x-isthmus-cache-ttl": "60"})
    clock.now += 59
    assert (await chat(cached, chat_body("short"))).headers["x-isthmus-cache"] == "hit"
    clock.now += 2
    assert (await chat(cached, chat_body("short"))).headers["x-isthmus-cache"] == "miss"
    assert (await chat(cached, chat_body())).headers["x-isthmus-cache"] == "hit"
    clock.now += 3600
    assert (await chat(cached, chat_body())).headers["x-isthmus-cache"] == "miss"


async def test_skip_rules_bypass_the_cache(tmp_path: Path, mock: MockProvider) -> None:
    settings = cache_settings(tmp_path, mock, {"skip_when": {"temperature_above": 0.5, "tools": True}})
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    async with serve_gateway(settings) as gateway:
        for body in (chat_body(temperature=0.9), chat_body(tools=[tool])):
            for _ in range(2):
                assert (await chat(gateway, body)).headers["x-isthmus-cache"] == "bypass"
        await chat(gateway, chat_body(temperature=0.5))
        assert (await chat(gateway, chat_body(temperature=0.5))).headers["x-isthmus-cache"] == "hit"
        assert len(mock.seen) == 5


async def test_a_key_can_turn_the_cache_off_or_set_its_ttl(tmp_path: Path, mock: MockProvider, clock: Clock) -> None:
    keys = [
        {"name": "dev-key", "team": "dev", "value": KEY, "models": ["*"], "cache": False},
        {"name": "dev-two", "team": "dev", "value": SAME_TEAM_KEY, "models": ["*"], "cache": {"ttl": "10m"}},
    ]
    async with serve_gateway(cache_settings(tmp_path, mock, {}, virtual_keys=keys)) as gateway:
        use_clock(gateway, clock)
        for _ in range(2):
            assert (await chat(gateway, chat_body())).headers["x-isthmus-cache"] == "bypass"
        await chat(gateway, chat_body(), key=SAME_TEAM_KEY)
        clock.now += 599
        assert (await chat(gateway, chat_body(), key=SAME_TEAM_KEY)).headers["x-isthmus-cache"] == "hit"
        clock.now += 2
        assert (await chat(gateway, chat_body(), key=SAME_TEAM_KEY)).headers["x-isthmus-cache"] == "miss"


async def test_a_failed_answer_is_never_stored(cached: Gateway, mock: MockProvider) -> None:
    from tests.llm_proxy.mock_provider import status

    mock.queue(status(400, "bad"))
    assert (await chat(cached, chat_body())).status_code == 400
    assert (await chat(cached, chat_body())).headers["x-isthmus-cache"] == "miss"


async def test_a_hit_costs_nothing_and_is_audited_with_the_saved_cost(tmp_path: Path, mock: MockProvider) -> None:
    keys = [
        {
            "name": "dev-key",
            "team": "dev",
            "value": KEY,
            "models": ["*"],
            "budgets": [{"max_usd": 100, "period": "1d"}],
        }
    ]
    pricing = {"mock/*": {"input": 1000, "output": 2000}}
    settings = cache_settings(tmp_path, mock, {}, virtual_keys=keys, pricing=pricing)
    async with serve_gateway(settings) as gateway:
        await chat(gateway, chat_body())
        await chat(gateway, chat_body())
        miss, hit = await gateway.wait_records(2)
        assert miss.cost_usd is not None and miss.cost_usd > 0
        assert miss.details["cache"] == "miss"
        assert hit.cost_usd == Decimal(0)
        assert hit.decision == "allow"
        assert hit.details["cache"] == "hit"
        assert Decimal(hit.details["cache_saved_usd"]) == miss.cost_usd
        metrics = gateway.governance.metrics
        assert metrics.cache_lookups.labels("hit")._value.get() == 1
        assert metrics.cache_saved._value.get() == pytest.approx(float(miss.cost_usd))


async def test_a_key_with_output_guardrails_neither_reads_nor_writes_the_shared_cache(
    tmp_path: Path, mock: MockProvider
) -> None:
    """A global entry stored for a key without rules must not reach a key whose output rules redact: the hit would
    skip them. The echo answer repeats the question, so an email in it is what the output rule must catch."""
    guardrails = [
        {"name": "pii-out", "detect": "pii", "entities": ["email"], "apply_to": ["output"], "action": "redact"}
    ]
    keys = [
        {"name": "dev-key", "team": "dev", "value": KEY, "models": ["*"]},
        {"name": "ops-key", "team": "ops", "value": OTHER_KEY, "models": ["*"], "guardrails": ["pii-out"]},
    ]
    settings = cache_settings(
        tmp_path, mock, {"ttl": "1h", "scope": "global"}, guardrails=guardrails, virtual_keys=keys
    )
    body = chat_body("write to ana@example.com")
    async with serve_gateway(settings) as gateway:
        stored = await chat(gateway, body)
        assert stored.headers["x-isthmus-cache"] == "miss"
        assert "ana@example.com" in stored.json()["choices"][0]["message"]["content"]
        guarded = await chat(gateway, body, key=OTHER_KEY)
        assert guarded.headers["x-isthmus-cache"] == "bypass"
        content = guarded.json()["choices"][0]["message"]["content"]
        assert "ana@example.com" not in content and "[REDACTED:email]" in content
        assert len(mock.seen) == 2
        again = await chat(gateway, body)  # the guarded key's answer was not stored over the first one
        assert again.headers["x-isthmus-cache"] == "hit"
        assert "ana@example.com" in again.json()["choices"][0]["message"]["content"]
