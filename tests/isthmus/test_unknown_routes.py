"""Requests no route takes: 404 or 405 in the path's API envelope, naming method and path, logged and counted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from isthmus.app import create_app
from llm_proxy import LlmProxy
from tests.conftest import StoreTarget
from tests.isthmus.conftest import ADMIN_KEY, base_settings
from toolpolicy.runtime import Governance

pytestmark = pytest.mark.anyio

Started = tuple[Governance, httpx2.AsyncClient]


@pytest.fixture(params=[True, False], ids=["direct", "starlette"])
async def gateway(request: pytest.FixtureRequest, store_target: StoreTarget) -> AsyncIterator[Started]:
    """The gateway with the LLM proxy's routes, with and without the direct dispatch of its hot routes."""
    settings = base_settings(store_target.url)
    governance = Governance(settings, store_connect_args=store_target.connect_args)
    await governance.start()
    app = create_app(settings, governance=governance, components=[LlmProxy(governance)], direct=request.param)
    try:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gateway") as client:
            yield governance, client
    finally:
        await governance.stop()


def counted(governance: Governance, method: str, area: str, status: int) -> float:
    labels = {"method": method, "area": area, "status": str(status)}
    return governance.metrics.registry.get_sample_value("isthmus_unknown_routes_total", labels) or 0.0


async def test_an_unknown_route_is_a_404_naming_method_and_path(
    gateway: Started, caplog: pytest.LogCaptureFixture
) -> None:
    governance, client = gateway
    with caplog.at_level("INFO", logger="isthmus.unknown_routes"):
        response = await client.post("/v1/threads", json={"model": "x"})
        await client.get("/v1/assistants/abc")
        await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "unknown route: POST /v1/threads",
            "type": "invalid_request_error",
            "param": None,
            "code": "unknown_route",
        }
    }
    assert counted(governance, "POST", "v1", 404) == 1 and counted(governance, "GET", "v1", 404) == 1
    assert counted(governance, "GET", "other", 404) == 1
    lines = [record.getMessage() for record in caplog.records if record.name == "isthmus.unknown_routes"]
    assert lines == [
        "404 'POST /v1/threads': unknown_route",
        "404 'GET /v1/assistants/abc': unknown_route",
        "404 'GET /no/such/thing': unknown_route",
    ]


async def test_a_known_path_with_a_wrong_method_is_a_405_with_allow(gateway: Started) -> None:
    governance, client = gateway
    models = await client.post("/v1/models", json={})
    chat = await client.get("/v1/chat/completions")
    assert models.status_code == 405 and chat.status_code == 405
    assert models.json()["error"] == {
        "message": "method POST is not allowed on /v1/models; allowed: GET, HEAD",
        "type": "invalid_request_error",
        "param": None,
        "code": "method_not_allowed",
    }
    assert chat.headers["allow"] == "POST" and chat.json()["error"]["code"] == "method_not_allowed"
    assert counted(governance, "POST", "v1", 405) == 1 and counted(governance, "GET", "v1", 405) == 1


async def test_anthropic_paths_answer_in_anthropics_envelope(gateway: Started) -> None:
    _, client = gateway
    wrong_method = await client.get("/v1/messages", headers={"anthropic-version": "2023-06-01"})
    unknown = await client.post("/v1/messages/batches", json={})
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "method GET is not allowed on /v1/messages; allowed: POST",
        },
    }
    assert unknown.status_code == 404
    assert unknown.json() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "unknown route: POST /v1/messages/batches"},
    }


async def test_admin_paths_keep_the_gateways_envelope_and_are_counted_under_admin(gateway: Started) -> None:
    governance, client = gateway
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    unknown = await client.get("/admin/nothing", headers=admin)
    wrong = await client.put("/admin/keys/bot", json={}, headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_route"
    assert "GET /admin/nothing" in unknown.json()["error"]["message"]
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert counted(governance, "GET", "admin", 404) == 1 and counted(governance, "PUT", "admin", 405) == 1


async def test_labels_stay_bounded_whatever_the_client_sends(gateway: Started) -> None:
    governance, client = gateway
    for index in range(5):
        await client.request("BREW", f"/coffee/{index}/{'x' * 400}")
    response = await client.get("/" + "y" * 1000)
    assert counted(governance, "OTHER", "other", 404) == 5
    message = response.json()["error"]["message"]
    assert message.startswith("unknown route: GET /yyy") and message.endswith("...") and len(message) < 300
    families = {metric.name: metric for metric in governance.metrics.registry.collect()}
    samples = families["isthmus_unknown_routes"].samples
    assert {sample.labels["area"] for sample in samples} <= {
        "v1",
        "admin",
        "mcp",
        "health",
        "ready",
        "metrics",
        "other",
    }
