"""One in-memory span exporter for the whole test session (the global tracer provider can be set only once).

The provider is the one `setup_tracing` installs (`LightTracerProvider`); the exporter keeps each span as the
SDK's `ReadableSpan` it stands for, which is what the tests read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mcp.shared._otel
import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolpolicy.telemetry.light_spans import LightSpan, LightTracerProvider


class ReadableSpans(InMemorySpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return super().export([span.readable() if isinstance(span, LightSpan) else span for span in spans])


_exporter: InMemorySpanExporter | None = None


def span_exporter() -> InMemorySpanExporter:
    global _exporter
    if _exporter is None:
        _exporter = ReadableSpans()
        provider = LightTracerProvider(resource=Resource.create({}), processor=SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    return _exporter


def without_tracer_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing off for one test, whether or not an earlier test installed the session's provider (`span_exporter`):
    a test of what the gateway skips without tracing must not depend on the order tests run in. The MCP SDK's own
    tracer (its client's and server's spans) took the provider's real tracer for good once it saw one: it is made a
    no-op one for the test too."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(mcp.shared._otel, "_tracer", trace.NoOpTracer())
