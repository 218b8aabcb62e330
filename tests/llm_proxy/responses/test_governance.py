"""`/v1/responses` under the same governance as chat: the worst case (with `max_output_tokens`) is reserved against
budgets before the provider is called, and each request leaves one audit record with its route, tokens and cost."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest

from tests.llm_proxy.conftest import KEY, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider
from toolpolicy.store.audit_log import AuditQuery

pytestmark = pytest.mark.anyio
OUTPUT_PRICED = {"mock/priced": {"input": 0, "output": 1000}}  # $0.001 an output token


async def test_max_output_tokens_over_the_budget_is_refused_before_the_provider(
    tmp_path: Path, mock: MockProvider
) -> None:
    providers = {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}}
    keys = [
        {
            "name": "metered",
            "team": "dev",
            "value": KEY,
            "models": ["mock/*"],
            "budgets": [{"max_usd": 0.5, "period": "1d"}],
        }
    ]
    settings = settings_for(tmp_path, providers, pricing=OUTPUT_PRICED, virtual_keys=keys)
    async with serve_gateway(settings) as gateway:
        async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
            with pytest.raises(openai.RateLimitError) as refused:
                await sdk.responses.create(model="mock/priced", input="hello", max_output_tokens=600)
            assert mock.seen == []
            within = await sdk.responses.create(model="mock/priced", input="hello", max_output_tokens=100)
        assert "budget key/metered 1d" in refused.value.message
        assert within.output_text == "echo:hello"
        records = await gateway.wait_records(2)
    refusal, answer = records
    assert refusal.status == 429 and refusal.details["route"] is None and refusal.tokens_in is None
    assert answer.status == 200 and answer.details["endpoint"] == "responses"
    assert (answer.tokens_in, answer.tokens_out) == (11, 7) and answer.cost_usd == Decimal("0.007")


async def test_each_response_leaves_one_stored_audit_record(tmp_path: Path, mock: MockProvider) -> None:
    providers = {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
            raw = await sdk.responses.with_raw_response.create(
                model="mock/gpt-test", input="hello", extra_headers={"x-request-id": "resp-req-1"}
            )
        assert raw.headers["x-isthmus-route"] == "mock/gpt-test" and raw.headers["x-request-id"] == "resp-req-1"
        await gateway.wait_records(1)
        await gateway.governance.audit.flush()
        stored, _ = await gateway.governance.audit_log.query(AuditQuery(kind="llm"))
    assert len(stored) == 1
    record = stored[0]
    assert record["request_id"] == "resp-req-1" and record["target"] == "mock/gpt-test"
    assert record["key_name"] == "dev-key" and record["status"] == 200
    assert record["details"]["endpoint"] == "responses" and record["details"]["route"] == "mock/gpt-test"
    assert (record["tokens_in"], record["tokens_out"]) == (11, 7)
