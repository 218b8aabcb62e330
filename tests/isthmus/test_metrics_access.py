"""`/metrics` names keys and customers and shows their budgets: only the metrics token or the admin key reads it."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.isthmus.conftest import BOT_KEY, GatewayFactory, admin
from tests.isthmus.test_cli import Server, _env, write_config

pytestmark = pytest.mark.anyio
METRICS_TOKEN = "scrape-token-1"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_metrics_open_to_the_metrics_token_and_the_admin_key_only(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(metrics_token=METRICS_TOKEN) as (_, client):
        await client.post("/v1/authorize", json={"model": "openai/gpt-4o-mini"}, headers=bearer(BOT_KEY))
        for headers in (bearer(METRICS_TOKEN), admin(), {"x-api-key": METRICS_TOKEN}):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 200 and "isthmus_requests_total" in response.text
        refusals = {
            "none": await client.get("/metrics"),
            "wrong": await client.get("/metrics", headers=bearer("not-the-token")),
            "virtual key": await client.get("/metrics", headers=bearer(BOT_KEY)),
        }
    assert {name: response.status_code for name, response in refusals.items()} == {
        "none": 401,
        "wrong": 401,
        "virtual key": 403,
    }
    for response in refusals.values():
        error = response.json()["error"]
        assert error["type"] in ("authentication_error", "permission_error") and "metrics" in error["message"]
        assert "isthmus_" not in response.text


async def test_metrics_are_closed_when_neither_token_is_configured(gateway_factory: GatewayFactory) -> None:
    async with gateway_factory(admin_key=None) as (_, client):
        response = await client.get("/metrics", headers=bearer("anything"))
    assert response.status_code == 401
    assert "set metrics_token" in response.json()["error"]["message"]


def test_serve_takes_the_metrics_token_from_the_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    server = Server(tmp_path, ["--config", str(config)], _env(ISTHMUS_METRICS_TOKEN=METRICS_TOKEN)).start()
    try:
        assert http_status(f"{server.url}/metrics", {}) == 401
        assert http_status(f"{server.url}/metrics", bearer(METRICS_TOKEN)) == 200
    finally:
        server.stop()


def http_status(url: str, headers: dict[str, str]) -> int:
    with httpx2.Client(timeout=10) as client:
        return client.get(url, headers=headers).status_code
