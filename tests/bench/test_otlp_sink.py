"""The OTLP sink counts the spans a real OpenTelemetry exporter sends it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.httpserver import listen
from bench.otlp_sink import TraceSink
from bench.procs import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sink_url() -> AsyncIterator[str]:
    port = free_port()
    server = await listen(TraceSink(), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def _export_three_spans(url: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("bench-test")
    for name in ("a", "b", "c"):
        with tracer.start_as_current_span(name):
            pass
    provider.shutdown()


async def test_exported_spans_are_counted(sink_url: str) -> None:
    with anyio.fail_after(20):
        await anyio.to_thread.run_sync(_export_three_spans, sink_url)
        async with httpx2.AsyncClient() as http:
            stats = (await http.get(f"{sink_url}/stats")).json()
            garbage = await http.post(f"{sink_url}/v1/traces", content=b"\x0a\x05ab")
    assert stats["spans"] == 3 and stats["exports"] == 3 and stats["rejected"] == 0
    assert garbage.status_code == 400
