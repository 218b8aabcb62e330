"""Gateway-served sampling end to end: the asking server's `ask_llm` samples, and the gateway's own `echo` model
answers (it echoes the last user message), through the LLM proxy's pipeline under the calling key's allowlist and
budget. The whole gateway runs, as `isthmus serve` builds it (`default_components`: LLM proxy and hub wired)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext

from tests.mcp_hub.conftest import FULL_KEY, Gateway, hub_settings, serving
from toolpolicy.store.audit_log import AuditQuery
from toolpolicy.store.ledger import SpendScope

pytestmark = pytest.mark.anyio

ASKING = Path(__file__).parents[1] / "servers" / "asking_server.py"
SAMPLER_KEY = "isk-sampler"
THRIFTY_KEY = "isk-thrifty"
MODEL = "mock/echo-1"
FIFTEEN_WORDS = " ".join(["alpha", "bravo", "charlie", "delta", "echo"] * 3)
"""A prompt the echo model answers with itself: 18 output tokens ($0.018 at the price below)."""
KEYS = (
    {"name": "sampler", "value": SAMPLER_KEY, "models": ["mock/*"], "mcp": {}},
    # Reserves 20 output tokens ($0.02) per sampling request: the second no longer fits after the first's $0.018.
    {"name": "thrifty", "value": THRIFTY_KEY, "models": ["mock/*"], "mcp": {}, "budgets": [{"max_usd": 0.025}]},
)


def asking_server(when: str) -> dict[str, Any]:
    sampling = {"model": MODEL, "max_tokens": 20, "when": when}
    return {"command": sys.executable, "args": [str(ASKING)], "protocol": "legacy", "sampling": sampling}


SERVERS = {"lacks": asking_server("client_lacks"), "never": asking_server("never"), "always": asking_server("always")}


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    keys = tuple({**key, "mcp": {name: ["*"] for name in SERVERS}} for key in KEYS)
    settings = hub_settings(
        tmp_path_factory.mktemp("gwsampling"),
        SERVERS,
        keys=keys,
        providers={"mock": {"kind": "echo"}},
        pricing={MODEL: {"input": 0, "output": 1000}},  # $0.001 per output token
    )
    async with serving(settings, both_halves=True) as started:
        yield started


def text(result: types.CallToolResult) -> str:
    return result.content[0].text  # type: ignore[union-attr]


async def ask(gateway: Gateway, key: str, server: str, prompt: str, request_id: str, **kwargs: Any) -> Any:
    headers = {"x-request-id": request_id}
    async with gateway.client(key, "legacy", server=server, headers=headers, **kwargs) as client:
        with anyio.fail_after(30):
            return await client.call_tool("ask_llm", {"prompt": prompt})


async def sampling_records(gateway: Gateway, request_id: str) -> list[dict[str, Any]]:
    await gateway.governance.audit.flush()
    rows, _ = await gateway.governance.audit_log.query(AuditQuery(kind="sampling"))
    return [row for row in rows if row["request_id"] == request_id]


async def test_a_client_without_sampling_gets_the_gateways_model_answer_audited_under_the_tool_call(
    gateway: Gateway,
) -> None:
    result = await ask(gateway, SAMPLER_KEY, "lacks", "Ada Lovelace", "gws-lacks-1")
    assert not result.is_error, text(result)
    answer = json.loads(text(result))
    assert answer == {
        "role": "assistant",
        "content": {"type": "text", "text": "Ada Lovelace"},
        "model": MODEL,
        "stopReason": "endTurn",
    }
    [record] = await sampling_records(gateway, "gws-lacks-1")
    assert (record["decision"], record["status"], record["key_name"]) == ("allow", 200, "sampler")
    assert record["details"]["served_by"] == "gateway" and record["details"]["model"] == MODEL
    assert record["details"]["tool_call_request_id"] == "gws-lacks-1" and record["details"]["outcome"] == "ok"
    assert record["tokens_in"] > 0 and record["tokens_out"] > 0
    assert Decimal(str(record["cost_usd"])) == record["tokens_out"] * Decimal("0.001")  # output only is priced
    assert "gws-lacks-1" in {row["request_id"] for row in await gateway.audit(target="lacks/ask_llm")}


async def test_when_client_lacks_a_client_that_declared_sampling_is_asked_itself(gateway: Gateway) -> None:
    asked: list[str] = []

    async def sample(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append("client")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="from the client"), model="client-model"
        )

    result = await ask(gateway, SAMPLER_KEY, "lacks", "Ada", "gws-lacks-2", sampling_callback=sample)
    assert not result.is_error, text(result)
    assert json.loads(text(result))["model"] == "client-model" and asked == ["client"]
    [record] = await sampling_records(gateway, "gws-lacks-2")
    assert "served_by" not in record["details"]


async def test_when_client_lacks_a_2026_client_without_a_mid_call_channel_gets_the_gateways_answer(
    gateway: Gateway,
) -> None:
    async with gateway.client(SAMPLER_KEY, "2026-07-28", server="lacks") as client:
        with anyio.fail_after(30):
            result = await client.call_tool("ask_llm", {"prompt": "Grace"})
    assert not result.is_error, text(result)
    assert json.loads(text(result))["content"] == {"type": "text", "text": "Grace"}


async def test_when_never_the_upstream_gets_method_not_found(gateway: Gateway) -> None:
    result = await ask(gateway, SAMPLER_KEY, "never", "Ada", "gws-never-1")
    assert result.is_error
    assert "client answered error -32601: the client does not support sampling" in text(result)
    [record] = await sampling_records(gateway, "gws-never-1")
    assert record["decision"] == "deny" and "served_by" not in record["details"]


async def test_when_always_the_gateway_answers_even_a_client_that_declared_sampling(gateway: Gateway) -> None:
    asked: list[str] = []

    async def sample(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append("client")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="from the client"), model="client-model"
        )

    result = await ask(gateway, SAMPLER_KEY, "always", "Ada", "gws-always-1", sampling_callback=sample)
    assert not result.is_error, text(result)
    answer = json.loads(text(result))
    assert answer["model"] == MODEL and answer["content"]["text"] == "Ada"
    assert asked == []


async def test_a_key_whose_model_allowlist_excludes_the_model_gets_an_error_upstream(gateway: Gateway) -> None:
    result = await ask(gateway, FULL_KEY, "always", "Ada", "gws-denied-1")  # `full` may use no model
    assert result.is_error
    assert "client answered error -32043: the gateway refused or failed this sampling request" in text(result)
    assert MODEL in text(result)
    [record] = await sampling_records(gateway, "gws-denied-1")
    assert (record["decision"], record["status"], record["reason"]) == ("deny", 403, "model_not_allowed")
    assert record["details"]["served_by"] == "gateway" and record["details"]["outcome"] == "refused"
    assert record["cost_usd"] is None


async def test_gateway_served_sampling_under_a_budget_that_runs_out(gateway: Gateway) -> None:
    first = await ask(gateway, THRIFTY_KEY, "lacks", FIFTEEN_WORDS, "gws-budget-1")
    assert not first.is_error, text(first)
    assert json.loads(text(first))["content"]["text"] == FIFTEEN_WORDS
    await gateway.governance.spend.flush()
    key = await gateway.governance.keys.resolve(THRIFTY_KEY)
    since = datetime(1970, 1, 1, tzinfo=UTC)
    spent = await gateway.governance.ledger.total(SpendScope(key_id=key.key_id), since)
    [charged] = await sampling_records(gateway, "gws-budget-1")
    assert spent == charged["tokens_out"] * Decimal("0.001") == Decimal(str(charged["cost_usd"])) > 0

    second = await ask(gateway, THRIFTY_KEY, "lacks", FIFTEEN_WORDS, "gws-budget-2")
    assert second.is_error
    assert "client answered error -32029: the gateway refused or failed this sampling request" in text(second)
    assert "budget key/thrifty" in text(second)
    await gateway.governance.spend.flush()
    assert await gateway.governance.ledger.total(SpendScope(key_id=key.key_id), since) == spent
    [refused] = await sampling_records(gateway, "gws-budget-2")
    assert (refused["decision"], refused["reason"], refused["cost_usd"]) == ("deny", "limit_exceeded", None)
