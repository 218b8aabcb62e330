"""Regressions: `/v1/authorize` and the admin API refuse hostile JSON, oversized bodies, unfit names and numbers
that are not finite with a 4xx in their envelope, and a refused write leaves nothing behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from tests.isthmus.conftest import BOT_KEY, GatewayFactory, admin
from toolpolicy.runtime import Governance

pytestmark = pytest.mark.anyio
Started = tuple[Governance, httpx2.AsyncClient]
BOT = {"authorization": f"Bearer {BOT_KEY}"}

HOSTILE = {
    "deep-nesting": b"[" * 100_000,
    "million-digit-int": b'{"model": "openai/gpt-4o-mini", "n": ' + b"1" * 1_000_000 + b"}",
    "nan": b'{"model": "openai/gpt-4o-mini", "n": NaN}',
    "lone-surrogate-model": b'{"model": "openai/\\ud800"}',
    "nul-model": b'{"model": "openai/a\\u0000b"}',
    "crlf-tool": b'{"server": "docs", "tool": "search_\\r\\nx"}',
    "absurd-model": b'{"model": "openai/' + b"a" * 5000 + b'"}',
}


async def chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 1024):
        yield b" " * 1024


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
async def test_the_decision_api_refuses_hostile_json_with_400(gateway_factory: GatewayFactory, body: bytes) -> None:
    async with gateway_factory(authorize_max_body_bytes=4 * 1024 * 1024) as (_, client):  # past the body limit
        response = await client.post("/v1/authorize", content=body, headers=BOT)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
        ok = await client.post("/v1/authorize", json={"model": "openai/gpt-4o-mini"}, headers=BOT)
        assert ok.status_code == 200


@pytest.mark.parametrize("declared", [True, False])
async def test_the_decision_api_has_a_body_limit(gateway_factory: GatewayFactory, declared: bool) -> None:
    async with gateway_factory(authorize_max_body_bytes=4096) as (_, client):
        body = b" " * 8192 if declared else chunks(8192)
        response = await client.post("/v1/authorize", content=body, headers=BOT)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_the_admin_api_has_a_body_limit(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(admin_max_body_bytes=4096) as (_, client):
        big = {"name": "big", "metadata": {"blob": "x" * 8192}}
        declared = await client.post("/admin/keys", json=big, headers=admin())
        streamed = await client.post("/admin/keys", content=chunks(8192), headers=admin())
        assert (await client.get("/admin/keys/big", headers=admin())).status_code == 404
    assert declared.status_code == streamed.status_code == 413


async def test_an_unfit_request_id_is_not_echoed(governance: Started) -> None:
    _, client = governance
    response = await client.post(
        "/v1/authorize", json={"model": "openai/gpt-4o-mini"}, headers={**BOT, "x-request-id": "x" * 10_000}
    )
    assert response.status_code == 200 and 0 < len(response.headers["x-request-id"]) <= 128


@pytest.mark.parametrize(
    ("literal", "collection"),
    [("Infinity", "keys"), ("NaN", "keys"), ("1e309", "keys"), ("-Infinity", "teams"), ("1e309", "customers")],
)
async def test_a_budget_that_is_not_finite_is_a_400_naming_the_field_and_nothing_is_created(
    governance: Started, literal: str, collection: str
) -> None:
    _, client = governance
    body = f'{{"name": "spender", "budgets": [{{"max_usd": 5}}, {{"max_usd": {literal}}}]}}'.encode()
    response = await client.post(f"/admin/{collection}", content=body, headers=admin())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "budgets[1].max_usd" and "finite" in error["message"]
    assert (await client.get(f"/admin/{collection}/spender", headers=admin())).status_code == 404


async def test_a_budget_too_large_to_count_is_a_400_naming_the_field(governance: Started) -> None:
    _, client = governance
    response = await client.post("/admin/keys", json={"name": "k", "budgets": [{"max_usd": 1e300}]}, headers=admin())
    assert response.status_code == 400 and response.json()["error"]["param"] == "budgets[0].max_usd"
    assert (await client.get("/admin/keys/k", headers=admin())).status_code == 404


async def test_a_patch_with_an_infinite_budget_leaves_the_key_as_it_was(governance: Started) -> None:
    _, client = governance
    before = (await client.get("/admin/keys/bot", headers=admin())).json()
    patch = b'{"budgets": [{"max_usd": Infinity, "period": "1d"}]}'
    response = await client.patch("/admin/keys/bot", content=patch, headers=admin())
    assert response.status_code == 400 and response.json()["error"]["param"] == "budgets[0].max_usd"
    assert (await client.get("/admin/keys/bot", headers=admin())).json() == before


@pytest.mark.parametrize("rate", ["99999999999999999999/1m", "1/9999999999d"])
async def test_a_rate_the_counters_cannot_hold_is_a_400(governance: Started, rate: str) -> None:
    _, client = governance
    response = await client.post("/admin/keys", json={"name": "k", "rate_limit": {"requests": rate}}, headers=admin())
    assert response.status_code == 400 and response.json()["error"]["param"] == "rate_limit.requests"
