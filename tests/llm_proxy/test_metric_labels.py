"""Model names callers make up do not become metric series, even when a provider answers them."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.llm_proxy.conftest import KEY, serve_gateway, settings_for

pytestmark = pytest.mark.anyio
SCRAPE = {"authorization": "Bearer scrape-token"}


def series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_a_thousand_made_up_models_do_not_grow_the_label_sets(tmp_path: Path) -> None:
    # The echo provider answers any model name, so each of these requests succeeds with its own route.
    settings = settings_for(tmp_path, {"echo": {"kind": "echo", "models": ["echo-1"]}}, metrics_token="scrape-token")
    made_up = [f"echo/{uuid.uuid4().hex}" for _ in range(1000)]
    async with serve_gateway(settings) as gateway, httpx2.AsyncClient(timeout=30) as client:

        async def chat(model: str) -> None:
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            response = await client.post(
                f"{gateway.v1}/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
            )
            assert response.status_code == 200

        for model in ["echo/echo-1", *made_up[:2]]:
            await chat(model)
        await gateway.wait_records(3)
        before = (await client.get(f"{gateway.url}/metrics", headers=SCRAPE)).text
        for model in made_up[2:]:
            await chat(model)
        await gateway.wait_records(1000 + 1)
        after = (await client.get(f"{gateway.url}/metrics", headers=SCRAPE)).text
    assert series(after) == series(before)
    routes = {dict(labels).get("route") for _, labels in series(after)} - {None}
    assert routes == {"echo/echo-1", "echo/other"}
    assert not any(model.partition("/")[2] in after for model in made_up)
    counted = {
        sample.labels["route"]: sample.value
        for family in text_string_to_metric_families(after)
        for sample in family.samples
        if sample.name == "isthmus_requests_total"
    }
    assert counted == {"echo/echo-1": 1, "echo/other": 1000}
