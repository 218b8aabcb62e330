"""Metrics and request logs produced by real traffic."""

from __future__ import annotations

import io
import json
import logging

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from isthmus.logs import configure
from tests.isthmus.conftest import BOT_KEY, admin
from toolpolicy.runtime import Governance

pytestmark = pytest.mark.anyio
Started = tuple[Governance, httpx2.AsyncClient]
BOT = {"authorization": f"Bearer {BOT_KEY}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_requests_denials_and_latency(governance: Started) -> None:
    _, client = governance
    for model in ["openai/gpt-4o-mini", "openai/gpt-4o-mini", "made-up/model"]:
        await client.post("/v1/authorize", json={"model": model}, headers=BOT)
    response = await client.get("/metrics", headers=admin())
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    allowed = ("isthmus_requests_total", (("kind", "authorize"), ("route", "-"), ("status", "200")))
    assert values[allowed] == 2
    # A model name the caller made up never becomes a label.
    assert values[("isthmus_requests_total", (("kind", "authorize"), ("route", "-"), ("status", "403")))] == 1
    assert values[("isthmus_denials_total", (("kind", "authorize"), ("reason", "model_not_allowed")))] == 1
    assert values[("isthmus_request_duration_seconds_count", (("kind", "authorize"),))] == 3
    assert not any("made-up" in str(labels) for _, labels in values)


async def test_one_json_line_per_request(governance: Started) -> None:
    _, client = governance
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure("info", stream=stream, json_lines=True)
    try:
        await client.post("/v1/authorize", json={"model": "openai/gpt-4o-mini"}, headers=BOT)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    requests = [line for line in lines if line["logger"] == "isthmus.requests"]
    assert len(requests) == 1
    line = requests[0]
    assert (line["key"], line["team"], line["target"], line["status"], line["decision"]) == (
        "bot",
        "support",
        "openai/gpt-4o-mini",
        200,
        "allow",
    )
    assert line["request_id"] and line["latency_ms"] >= 0 and BOT_KEY not in stream.getvalue()
