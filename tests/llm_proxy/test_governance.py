"""The shared governance core seen through the proxy: audit records, cost, rate limits, per-provider limits."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from llm_proxy import estimate, pipeline
from tests.llm_proxy.conftest import KEY, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider
from toolpolicy import governor
from toolpolicy.decide import Decision
from toolpolicy.store.audit_log import AuditQuery
from toolpolicy.types import Principal, Target

pytestmark = pytest.mark.anyio
HELLO = [{"role": "user", "content": "hello"}]


def providers(mock: MockProvider) -> dict[str, Any]:
    return {
        "openai": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-o"}]},
        "backup": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-b"}]},
    }


def limited_key(**limits: Any) -> list[dict[str, Any]]:
    return [{"name": "metered", "team": "dev", "value": KEY, "models": ["*"], **limits}]


async def chat(url: str, model: str, **extra: Any) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=url, headers={"authorization": f"Bearer {KEY}"}) as client:
        return await client.post("/chat/completions", json={"model": model, "messages": HELLO, **extra})


async def test_each_request_leaves_one_audit_record_with_route_tokens_and_cost(
    tmp_path: Path, mock: MockProvider
) -> None:
    async with serve_gateway(settings_for(tmp_path, providers(mock))) as gateway:
        response = await chat(gateway.v1, "openai/gpt-4o-mini", max_tokens=50)
        assert response.status_code == 200
        [record] = await gateway.wait_records(1)
        await gateway.governance.audit.flush()
        stored, _ = await gateway.governance.audit_log.query(AuditQuery(kind="llm"))
    assert record.kind == "llm" and record.target == "openai/gpt-4o-mini" and record.decision == "allow"
    assert (record.key_name, record.team, record.customer) == ("dev-key", "dev", "acme")
    assert record.key_id == stored[0]["key_id"] and record.key_id  # the key's own id, as stored
    assert record.status == 200 and record.reason is None and record.latency_ms > 0
    assert (record.tokens_in, record.tokens_out) == (11, 7)
    assert record.cost_usd == Decimal("0.15") * 11 / 1_000_000 + Decimal("0.6") * 7 / 1_000_000
    assert record.details["route"] == "openai/gpt-4o-mini" and record.details["attempts"] == 1
    assert record.request_id == response.headers["x-request-id"]
    assert stored and stored[0]["details"]["route"] == "openai/gpt-4o-mini"


async def test_the_keys_rate_limit_is_advertised_then_enforced_with_retry_after(
    tmp_path: Path, mock: MockProvider
) -> None:
    keys = limited_key(rate_limit={"requests": "2/1d"})
    async with serve_gateway(settings_for(tmp_path, providers(mock), virtual_keys=keys)) as gateway:
        first = await chat(gateway.v1, "openai/gpt-4o-mini")
        await chat(gateway.v1, "openai/gpt-4o-mini")
        refused = await chat(gateway.v1, "openai/gpt-4o-mini")
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(mock.seen) == 2


async def test_a_provider_over_its_limit_is_skipped_for_the_next_target(tmp_path: Path, mock: MockProvider) -> None:
    keys = limited_key(provider_rate_limits={"openai": {"requests": "1/1d"}})
    models = {"smart": {"targets": ["openai/gpt-4o-mini", "backup/gpt-4o-mini"]}}
    settings = settings_for(tmp_path, providers(mock), virtual_keys=keys, models=models)
    async with serve_gateway(settings) as gateway:
        first = await chat(gateway.v1, "smart")
        second = await chat(gateway.v1, "smart")
        only_openai = await chat(gateway.v1, "openai/gpt-4o-mini")
    assert first.headers["x-isthmus-route"] == "openai/gpt-4o-mini"
    assert second.headers["x-isthmus-route"] == "backup/gpt-4o-mini"
    assert only_openai.status_code == 429
    assert [seen.key for seen in mock.seen] == ["sk-o", "sk-b"]


async def test_a_stream_is_settled_with_the_providers_usage(tmp_path: Path, mock: MockProvider) -> None:
    keys = limited_key(rate_limit={"tokens": "1000/1d"})
    async with serve_gateway(settings_for(tmp_path, providers(mock), virtual_keys=keys)) as gateway:
        async with httpx2.AsyncClient(base_url=gateway.v1, headers={"authorization": f"Bearer {KEY}"}) as client:
            body = {"model": "openai/gpt-4o-mini", "messages": HELLO, "stream": True, "max_tokens": 100}
            async with client.stream("POST", "/chat/completions", json=body) as response:
                text = (await response.aread()).decode()
            [record] = await gateway.wait_records(1)
            after = await client.post(
                "/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": HELLO, "max_tokens": 100}
            )
    assert text.endswith("data: [DONE]\n\n") and '"usage"' not in text
    assert (record.tokens_in, record.tokens_out) == (11, 7) and record.cost_usd and record.cost_usd > 0
    # The stream's 18 tokens were committed, not its reservation of input estimate + max_tokens.
    reserved = estimate.request_input({"model": "openai/gpt-4o-mini", "messages": HELLO, "max_tokens": 100}) + 100
    assert int(after.headers["x-ratelimit-remaining-tokens"]) == 1000 - 18 - reserved


async def test_an_unknown_model_costs_no_rate_limit(tmp_path: Path, mock: MockProvider) -> None:
    keys = limited_key(rate_limit={"requests": "1/1d"})
    async with serve_gateway(settings_for(tmp_path, providers(mock), virtual_keys=keys)) as gateway:
        unknown = await chat(gateway.v1, "nowhere/model")
        known = await chat(gateway.v1, "openai/gpt-4o-mini")
    assert unknown.status_code == 404 and known.status_code == 200


def counting_estimates(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each input estimate the edge makes, recorded (the real estimate is still returned)."""
    made: list[int] = []
    real = estimate.request_input

    def counted(body: dict[str, Any]) -> int:
        made.append(real(body))
        return made[-1]

    monkeypatch.setattr(estimate, "request_input", counted)
    return made


async def test_a_key_with_no_limit_anywhere_is_not_estimated_and_a_limited_one_is(
    tmp_path: Path, mock: MockProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = counting_estimates(monkeypatch)
    async with serve_gateway(settings_for(tmp_path, providers(mock), virtual_keys=limited_key())) as gateway:
        free = await chat(gateway.v1, "openai/gpt-4o-mini", max_tokens=10)
    assert free.status_code == 200 and "x-ratelimit-remaining-tokens" not in free.headers
    assert made == []  # nothing would reserve it: the body is not walked for it
    keys = limited_key(rate_limit={"tokens": "1000/1d"})
    async with serve_gateway(settings_for(tmp_path / "limited", providers(mock), virtual_keys=keys)) as gateway:
        limited = await chat(gateway.v1, "openai/gpt-4o-mini", max_tokens=10)
    assert limited.status_code == 200 and len(made) == 1
    # The estimate was held: the remaining tokens advertised are the limit less input estimate + max_tokens.
    assert int(limited.headers["x-ratelimit-remaining-tokens"]) == 1000 - made[0] - 10


async def test_a_request_is_judged_by_the_allowlist_once(
    tmp_path: Path, mock: MockProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    judged: list[str] = []

    def counting(original: Callable[..., Decision]) -> Callable[..., Decision]:
        def judge(principal: Principal, target: Target, **options: Any) -> Decision:
            judged.append(target.name)
            return original(principal, target, **options)

        return judge

    monkeypatch.setattr(pipeline, "authorize", counting(pipeline.authorize))
    monkeypatch.setattr(governor, "authorize", counting(governor.authorize))
    async with serve_gateway(settings_for(tmp_path, providers(mock))) as gateway:
        response = await chat(gateway.v1, "openai/gpt-4o-mini")
    assert response.status_code == 200
    assert judged == ["openai/gpt-4o-mini"]  # by the pipeline, before routing; not again by the governor
