"""`CurrentSpan` with a library's `ProxyTracer` (got before a provider was installed, as the MCP SDK's is) starts
the span with the tracer the proxy found, without going through the proxy; before it has found one, through it."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN, ProxyTracer, SpanKind

from toolpolicy.telemetry.current_span import CurrentSpan
from toolpolicy.telemetry.light_spans import LightTracerProvider

ARGUMENTS = ("MCP send tools/call add", None, SpanKind.CLIENT, {"mcp.method.name": "tools/call"}, (), None, True, True)


def test_a_resolved_proxy_tracer_is_skipped_for_the_tracer_it_found(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = LightTracerProvider(
        resource=Resource.create({"service.name": "isthmus-test"}),
        processor=SimpleSpanProcessor(exporter),
        shutdown_on_exit=False,
    )
    proxy = ProxyTracer("mcp-python-sdk")
    proxy._real_tracer = provider.get_tracer("mcp-python-sdk")

    def not_through_the_proxy(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("started through the proxy")

    monkeypatch.setattr(ProxyTracer, "start_span", not_through_the_proxy)
    with CurrentSpan(proxy, ARGUMENTS) as span:
        assert trace.get_current_span() is span
    (ended,) = exporter.get_finished_spans()
    exported = ended.readable()  # type: ignore[attr-defined]  # a light span
    assert exported.name == "MCP send tools/call add" and exported.instrumentation_scope.name == "mcp-python-sdk"
    assert exported.attributes == {"mcp.method.name": "tools/call"}


def test_an_unresolved_proxy_tracer_still_decides_the_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    with CurrentSpan(ProxyTracer("mcp-python-sdk"), ARGUMENTS) as span:
        assert span is INVALID_SPAN or not span.is_recording()
