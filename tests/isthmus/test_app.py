from __future__ import annotations

import gc
from pathlib import Path

import httpx2
import pytest

from isthmus.app import YOUNG_GC_THRESHOLD, create_app
from tests.conftest import StoreTarget
from tests.isthmus.conftest import BOT_KEY, GatewayFactory, admin, base_settings
from toolpolicy.runtime import Governance
from toolpolicy.store import Store

pytestmark = pytest.mark.anyio
Started = tuple[Governance, httpx2.AsyncClient]
BOT = {"authorization": f"Bearer {BOT_KEY}"}


async def test_health_and_readiness(governance: Started) -> None:
    _, client = governance
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = (await client.get("/ready")).json()
    assert ready["status"] == "ready" and ready["store"]["status"] == "ok"
    assert ready["mcp_servers"] == {"docs": {"transport": "streamable-http", "enabled": True}}


async def test_readiness_fails_when_the_store_is_unreachable(tmp_path: Path) -> None:
    settings = base_settings(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    governance = Governance(settings)
    await governance.start()
    store = governance.store
    # Nothing listens on port 1: every connection is refused at once.
    governance.store = Store.open("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        transport = httpx2.ASGITransport(app=create_app(settings, governance=governance, components=[]))
        async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as client:
            ready = await client.get("/ready")
            assert (await client.get("/health")).status_code == 200
    finally:
        await governance.store.close()
        governance.store = store
        await governance.stop()
    assert ready.status_code == 503 and ready.json()["store"]["status"] == "down"


@pytest.mark.parametrize("headers", [BOT, {"x-api-key": BOT_KEY}, {"authorization": f"bearer {BOT_KEY}"}])
async def test_the_decision_api_accepts_bearer_and_x_api_key(governance: Started, headers: dict[str, str]) -> None:
    _, client = governance
    response = await client.post("/v1/authorize", json={"model": "openai/gpt-4o-mini"}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {
        "allowed": True,
        "key": "bot",
        "team": "support",
        "customer": "acme",
        "target": {"kind": "model", "name": "openai/gpt-4o-mini"},
    }


async def test_the_decision_api_answers_tools_and_denials(governance: Started) -> None:
    _, client = governance
    allowed = await client.post("/v1/authorize", json={"server": "docs", "tool": "search_pages"}, headers=BOT)
    assert allowed.status_code == 200
    denied = await client.post("/v1/authorize", json={"server": "docs", "tool": "delete_page"}, headers=BOT)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "tool_not_allowed"
    model = await client.post("/v1/authorize", json={"model": "openai/gpt-4o"}, headers=BOT)
    assert model.json()["error"] == {
        "message": "key 'bot' may not use model 'openai/gpt-4o'",
        "type": "permission_error",
        "param": "model",
        "code": "model_not_allowed",
    }


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, b'{"model": "openai/gpt-4o-mini"}', 401, "missing_api_key"),
        ({"authorization": "Bearer isk-nope"}, b'{"model": "openai/gpt-4o-mini"}', 401, "invalid_api_key"),
        (BOT, b"{", 400, "invalid_request"),
        (BOT, b'{"tool": "x"}', 400, "invalid_request"),
    ],
)
async def test_the_decision_api_rejects_bad_calls_clearly(
    governance: Started, headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    _, client = governance
    response = await client.post("/v1/authorize", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_the_request_id_is_echoed(governance: Started) -> None:
    _, client = governance
    response = await client.post(
        "/v1/authorize", json={"model": "openai/gpt-4o-mini"}, headers={**BOT, "x-request-id": "req-42"}
    )
    assert response.headers["x-request-id"] == "req-42"


async def test_a_revocation_reaches_another_replica_within_the_cache_bound(gateway_factory: GatewayFactory) -> None:
    ttl = 30.0
    async with gateway_factory(key_cache_ttl=ttl) as (_, one), gateway_factory(key_cache_ttl=ttl) as (replica, two):
        now = [1000.0]
        replica.keys._clock = lambda: now[0]  # the second replica's key cache runs on a clock the test moves
        created = (await one.post("/admin/keys", json={"name": "shared", "models": ["*"]}, headers=admin())).json()
        secret = {"authorization": f"Bearer {created['key']}"}
        check = {"model": "openai/x"}
        assert (await two.post("/v1/authorize", json=check, headers=secret)).status_code == 200

        await one.post("/admin/keys/shared/revoke", headers=admin())
        assert (await one.post("/v1/authorize", json=check, headers=secret)).status_code == 401
        now[0] += ttl - 1  # still inside the bound: the other replica may serve its cached key
        assert (await two.post("/v1/authorize", json=check, headers=secret)).status_code == 200
        now[0] += 1  # the bound: the revocation has reached it
        assert (await two.post("/v1/authorize", json=check, headers=secret)).status_code == 401


async def test_stopping_flushes_pending_audit_records(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(audit={"flush_interval": 3600}) as (_, client):
        for _ in range(3):
            await client.post("/v1/authorize", json={"model": "openai/gpt-4o-mini"}, headers=BOT)
    async with gateway_factory() as (_, client):
        records = (await client.get("/admin/audit?kind=authorize", headers=admin())).json()["data"]
    assert len(records) == 3


async def test_failed_authentications_are_audited(governance: Started) -> None:
    runtime, client = governance
    await client.post("/v1/authorize", json={"model": "openai/x"}, headers={"authorization": "Bearer isk-guess"})
    await client.post("/v1/authorize", json={"model": "openai/x"})
    await runtime.audit.flush()
    records = (await client.get("/admin/audit?decision=deny", headers=admin())).json()["data"]
    assert sorted(r["reason"] for r in records) == ["invalid_api_key", "missing_api_key"]
    assert all(r["key_name"] is None and r["status"] == 401 for r in records)


async def test_the_servers_app_freezes_its_start_up_heap_and_starts_young_collections_later(
    store_target: StoreTarget,
) -> None:
    settings = base_settings(store_target.url)
    governance = Governance(settings, store_connect_args=store_target.connect_args)
    app = create_app(settings, governance=governance, components=[], freeze_after_start=True)
    gc.unfreeze()
    before = gc.get_threshold()
    try:
        async with app.router.lifespan_context(app):
            assert governance.started
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
    assert not governance.started
    assert gc.get_threshold() == before
