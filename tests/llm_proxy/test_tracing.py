"""Spans of an LLM request: GenAI attributes, one child per upstream attempt, the caller's trace continued and
propagated to the provider."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from tests.llm_proxy.conftest import KEY, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider
from tests.tracing_support import span_exporter

pytestmark = pytest.mark.anyio
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def test_a_request_is_one_span_tree_continuing_the_callers_trace(tmp_path: Path, mock: MockProvider) -> None:
    exporter = span_exporter()
    providers = {
        "mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}], "models": ["gpt-x"]}
    }
    mock.queue(None)
    settings = settings_for(tmp_path, providers, llm={"backoff_initial": 0.001}, metrics_token="scrape")
    async with serve_gateway(settings) as gateway:
        exporter.clear()
        async with httpx2.AsyncClient() as client:
            response = await client.post(
                f"{gateway.v1}/chat/completions",
                json={"model": "mock/gpt-x", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {KEY}", "traceparent": TRACEPARENT},
            )
            await gateway.wait_records(1)
            metrics = (await client.get(f"{gateway.url}/metrics", headers={"authorization": "Bearer scrape"})).text
    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    server = next(span for span in spans if span.kind == SpanKind.SERVER and span.name == "chat mock/gpt-x")
    attempts = [span for span in spans if span.kind == SpanKind.CLIENT and span.parent is not None]
    attempts = [span for span in attempts if span.parent.span_id == server.context.span_id]
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.attributes is not None
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["gen_ai.request.model"] == "mock/gpt-x"
    assert server.attributes["gen_ai.response.model"] == "gpt-x"
    assert server.attributes["gen_ai.provider.name"] == "openai"
    assert server.attributes["gen_ai.usage.input_tokens"] == 11 and server.attributes["gen_ai.usage.output_tokens"] == 7
    assert server.attributes["isthmus.key.name"] == "dev-key" and server.attributes["isthmus.team"] == "dev"
    assert not any(KEY in str(value) for span in spans for value in (span.attributes or {}).values())
    assert len(attempts) == 1 and attempts[0].name == "chat gpt-x"
    # The provider saw the attempt span as its parent, in the same trace.
    sent = mock.seen[-1].headers.get("traceparent") or mock.seen[-1].headers.get("Traceparent")
    assert sent is not None and sent.split("-")[1] == TRACE_ID
    assert sent.split("-")[2] == format(attempts[0].context.span_id, "016x")
    # The same request in the metrics: counted by its route, with its tokens and its latency.
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    assert values[("isthmus_requests_total", (("kind", "llm"), ("route", "mock/gpt-x"), ("status", "200")))] == 1
    assert values[("isthmus_tokens_total", (("direction", "output"), ("route", "mock/gpt-x")))] == 7
    assert values[("isthmus_request_duration_seconds_count", (("kind", "llm"),))] == 1


async def test_one_chat_request_is_two_spans(tmp_path: Path, mock: MockProvider) -> None:
    """The whole span set of one chat completion: the request's server span and one client span per upstream
    attempt under it, whose traceparent the provider receives; nothing else."""
    exporter = span_exporter()
    providers = {
        "mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}], "models": ["gpt-x"]}
    }
    mock.queue(None)
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        exporter.clear()
        async with httpx2.AsyncClient() as client:
            response = await client.post(
                f"{gateway.v1}/chat/completions",
                json={"model": "mock/gpt-x", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {KEY}", "traceparent": TRACEPARENT},
            )
            await gateway.wait_records(1)
    assert response.status_code == 200
    spans = [span for span in exporter.get_finished_spans() if format(span.context.trace_id, "032x") == TRACE_ID]
    assert sorted((span.name, span.kind) for span in spans) == [
        ("chat gpt-x", SpanKind.CLIENT),
        ("chat mock/gpt-x", SpanKind.SERVER),
    ]
    server = next(span for span in spans if span.kind == SpanKind.SERVER)
    attempt = next(span for span in spans if span.kind == SpanKind.CLIENT)
    assert server.parent is not None and format(server.parent.span_id, "016x") == TRACEPARENT.split("-")[2]
    assert attempt.parent is not None and attempt.parent.span_id == server.context.span_id
    assert server.attributes is not None and attempt.attributes is not None
    assert {key: server.attributes[key] for key in server.attributes if key != "isthmus.request_id"} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "mock/gpt-x",
        "gen_ai.response.model": "gpt-x",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 7,
        "http.response.status_code": 200,
        "isthmus.route": "mock/gpt-x",
        "isthmus.attempts": 1,
        "isthmus.key.name": "dev-key",
        "isthmus.team": "dev",
        "isthmus.customer": "acme",
        "isthmus.cost_usd": 0.0,
    }
    assert dict(attempt.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-x",
        "isthmus.attempt": 1,
        "isthmus.provider_key": attempt.attributes["isthmus.provider_key"],
    }
    sent = mock.seen[-1].headers.get("traceparent") or mock.seen[-1].headers.get("Traceparent")
    assert sent == f"00-{TRACE_ID}-{attempt.context.span_id:016x}-01"
