from __future__ import annotations

import json

import httpx2
import pytest

from tests.isthmus.conftest import BOT_KEY, admin
from toolpolicy.audit_export import parse_csv_export
from toolpolicy.runtime import Governance

pytestmark = pytest.mark.anyio
Started = tuple[Governance, httpx2.AsyncClient]


async def test_customers_teams_and_keys_have_full_crud(governance: Started) -> None:
    _, client = governance
    assert (await client.post("/admin/customers", json={"name": "globex"}, headers=admin())).status_code == 201
    team = await client.post("/admin/teams", json={"name": "ops", "customer": "globex"}, headers=admin())
    assert team.status_code == 201 and team.json()["customer"] == "globex"

    created = await client.post(
        "/admin/keys", json={"name": "ops-bot", "team": "ops", "models": ["openai/*"]}, headers=admin()
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("isk-") and body["team"] == "ops" and "key_hash" not in body

    read = await client.get("/admin/keys/ops-bot", headers=admin())
    assert read.status_code == 200 and "key" not in read.json()

    patched = await client.patch("/admin/keys/ops-bot", json={"models": ["anthropic/*"]}, headers=admin())
    assert patched.json()["models"] == ["anthropic/*"]

    names = [k["name"] for k in (await client.get("/admin/keys", headers=admin())).json()["data"]]
    assert names == ["bot", "ops-bot"]

    assert (await client.delete("/admin/keys/ops-bot", headers=admin())).status_code == 204
    assert (await client.get("/admin/keys/ops-bot", headers=admin())).status_code == 404
    assert (await client.delete("/admin/teams/ops", headers=admin())).status_code == 204
    assert (await client.delete("/admin/customers/globex", headers=admin())).status_code == 204


async def test_lists_paginate_with_a_cursor(governance: Started) -> None:
    _, client = governance
    for index in range(5):
        await client.post("/admin/teams", json={"name": f"t{index}"}, headers=admin())
    first = (await client.get("/admin/teams?limit=4", headers=admin())).json()
    assert len(first["data"]) == 4 and first["next_cursor"] == first["data"][-1]["name"]
    second = (await client.get(f"/admin/teams?limit=4&after={first['next_cursor']}", headers=admin())).json()
    assert [t["name"] for t in first["data"] + second["data"]] == ["support", "t0", "t1", "t2", "t3", "t4"]
    assert second["next_cursor"] is None


async def test_rotation_and_revocation_take_effect_at_once_on_this_replica(governance: Started) -> None:
    _, client = governance
    created = (await client.post("/admin/keys", json={"name": "k", "models": ["*"]}, headers=admin())).json()
    check = {"model": "openai/x"}

    def bearer(secret: str) -> dict[str, str]:
        return {"authorization": f"Bearer {secret}"}

    assert (await client.post("/v1/authorize", json=check, headers=bearer(created["key"]))).status_code == 200
    rotated = (await client.post("/admin/keys/k/rotate", headers=admin())).json()
    assert (await client.post("/v1/authorize", json=check, headers=bearer(created["key"]))).status_code == 401
    assert (await client.post("/v1/authorize", json=check, headers=bearer(rotated["key"]))).status_code == 200

    revoked = await client.post("/admin/keys/k/revoke", headers=admin())
    assert revoked.json()["active"] is False
    refused = await client.post("/v1/authorize", json=check, headers=bearer(rotated["key"]))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_revoked"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": f"Bearer {BOT_KEY}"}, 403),
        ({"x-api-key": BOT_KEY}, 403),
    ],
)
async def test_only_the_admin_key_opens_the_admin_api(
    governance: Started, headers: dict[str, str], status: int
) -> None:
    _, client = governance
    response = await client.get("/admin/keys", headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == ("authentication_error" if status == 401 else "permission_error")


async def test_the_admin_api_is_closed_without_an_admin_key(gateway_factory) -> None:  # type: ignore[no-untyped-def]
    async with gateway_factory(admin_key=None) as (_, client):
        response = await client.get("/admin/keys", headers=admin())
        assert response.status_code == 401 and "admin_key" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/admin/customers", b"{not json", 400, None),
        ("/admin/customers", b"[1, 2]", 400, None),
        ("/admin/customers", b"", 400, None),
        ("/admin/customers", b'{"name": "acme"}', 409, "name"),
        ("/admin/customers", b'{"name": "x", "colour": "red"}', 400, "colour"),
        ("/admin/customers", b'{"name": "bad name!"}', 400, "name"),
        ("/admin/teams", b'{"name": "t", "customer": "nope"}', 400, "customer"),
        ("/admin/keys", b'{"name": "k", "team": "nope"}', 400, "team"),
        ("/admin/keys", b'{"name": "k", "models": "openai/*"}', 400, "models"),
        ("/admin/keys", b'{"name": "k", "mcp": {"nope": ["*"]}}', 400, "mcp.nope"),
        ("/admin/keys", b'{"name": "k", "expires_at": "soon"}', 400, "expires_at"),
        ("/admin/keys", b'{"name": "k", "budgets": [{"max_usd": -1}]}', 400, "budgets[0].max_usd"),
        ("/admin/keys", b'{"name": "k", "rate_limit": {"requests": "lots"}}', 400, "rate_limit.requests"),
    ],
)
async def test_bad_input_gets_a_4xx_naming_the_field_and_writes_nothing(
    governance: Started, path: str, body: bytes, status: int, param: str | None
) -> None:
    _, client = governance
    before = {
        collection: len((await client.get(f"/admin/{collection}", headers=admin())).json()["data"])
        for collection in ("customers", "teams", "keys")
    }
    response = await client.post(path, content=body, headers={**admin(), "content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    after = {
        collection: len((await client.get(f"/admin/{collection}", headers=admin())).json()["data"])
        for collection in ("customers", "teams", "keys")
    }
    assert after == before


async def test_patch_of_a_missing_entity_is_404_and_bad_patch_changes_nothing(governance: Started) -> None:
    _, client = governance
    assert (await client.patch("/admin/teams/nope", json={}, headers=admin())).status_code == 404
    bad = await client.patch("/admin/keys/bot", json={"models": ["x/*"], "team": "nope"}, headers=admin())
    assert bad.status_code == 400
    assert (await client.get("/admin/keys/bot", headers=admin())).json()["models"] == ["openai/gpt-4o-mini"]
    secret = await client.patch("/admin/keys/bot", json={"value": "isk-mine"}, headers=admin())
    assert secret.status_code == 400 and secret.json()["error"]["param"] == "value"


async def test_deleting_a_customer_with_teams_conflicts(governance: Started) -> None:
    _, client = governance
    response = await client.delete("/admin/customers/acme", headers=admin())
    assert response.status_code == 409
    assert (await client.get("/admin/customers/acme", headers=admin())).status_code == 200


async def test_unknown_routes_and_methods_answer_in_json(governance: Started) -> None:
    _, client = governance
    assert (await client.get("/admin/nothing", headers=admin())).json()["error"]["message"]
    response = await client.put("/admin/keys/bot", json={}, headers=admin())
    assert response.status_code == 405 and response.json()["error"]


async def test_audit_events_filter_and_paginate(governance: Started) -> None:
    runtime, client = governance
    bot = {"authorization": f"Bearer {BOT_KEY}"}
    for model in ["openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude"]:
        await client.post("/v1/authorize", json={"model": model}, headers=bot)
    await runtime.audit.flush()

    denied = (await client.get("/admin/audit?decision=deny", headers=admin())).json()
    assert sorted(r["target"] for r in denied["data"]) == ["anthropic/claude", "openai/gpt-4o"]
    assert all(r["key_name"] == "bot" and r["team"] == "support" and r["customer"] == "acme" for r in denied["data"])
    assert all(r["status"] == 403 and r["reason"] == "model_not_allowed" for r in denied["data"])

    first = (await client.get("/admin/audit?kind=authorize&key=bot&limit=3", headers=admin())).json()
    rest = (await client.get(f"/admin/audit?limit=3&cursor={first['next_cursor']}", headers=admin())).json()
    assert len(first["data"]) == 3 and len(rest["data"]) == 1 and rest["next_cursor"] is None

    for query in ("since=yesterday", "limit=0", "limit=ten", "colour=red", "cursor=zz", "since=2026-01-01T00:00:00"):
        response = await client.get(f"/admin/audit?{query}", headers=admin())
        assert response.status_code == 400, query
    window = await client.get("/admin/audit?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z", headers=admin())
    assert window.json()["data"] == []


async def test_audit_export_streams_jsonl_and_csv_and_filters_by_server(governance: Started) -> None:
    runtime, client = governance
    bot = {"authorization": f"Bearer {BOT_KEY}"}
    for tool in ["search_a", "delete_b", "search_c"]:
        await client.post("/v1/authorize", json={"server": "docs", "tool": tool}, headers=bot)
    await client.post("/v1/authorize", json={"model": "openai/gpt-4o-mini"}, headers=bot)
    await runtime.audit.flush()

    jsonl = await client.get("/admin/audit/export?server=docs", headers=admin())
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    targets = [json.loads(line)["target"] for line in jsonl.text.splitlines()]
    assert targets == ["docs/search_a", "docs/delete_b", "docs/search_c"]

    one = (await client.get("/admin/audit?server=docs&tool=delete_b", headers=admin())).json()["data"]
    assert [r["decision"] for r in one] == ["deny"]

    csv_export = await client.get("/admin/audit/export?format=csv", headers=admin())
    assert [row["target"] for row in parse_csv_export(csv_export.text)][-1] == "openai/gpt-4o-mini"
    assert (await client.get("/admin/audit/export?format=xml", headers=admin())).status_code == 400
    assert (await client.get("/admin/audit?tool=x", headers=admin())).status_code == 400
    assert (await client.get("/admin/audit/export", headers=bot)).status_code == 403
