"""Spans of MCP tool calls: the caller's trace continued (HTTP header on REST, `_meta` on MCP), one span per call
with MCP attributes, a child for the upstream call, the trace carried into the upstream server's request."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind

from tests.mcp_hub.conftest import LIMITED_KEY, Gateway
from tests.tracing_support import span_exporter

pytestmark = pytest.mark.anyio
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def test_a_rest_tool_call_is_a_span_tree_in_the_callers_trace(gateway: Gateway) -> None:
    exporter = span_exporter()
    exporter.clear()
    async with gateway.http(LIMITED_KEY, traceparent=TRACEPARENT) as http:
        response = await http.post("/v1/mcp/tools/call", json={"name": "fx__add", "arguments": {"a": 1, "b": 2}})
    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    in_trace = [span for span in spans if format(span.context.trace_id, "032x") == TRACE_ID]
    call = next(span for span in in_trace if span.name == "tools/call fx__add")
    assert call.attributes is not None
    assert call.attributes["mcp.method.name"] == "tools/call"
    assert call.attributes["gen_ai.tool.name"] == "fx__add"
    assert call.attributes["isthmus.mcp.server"] == "fx" and call.attributes["isthmus.outcome"] == "ok"
    assert call.attributes["isthmus.key.name"] == "limited"
    upstream = next(
        span
        for span in in_trace
        if span.kind == SpanKind.CLIENT and span.parent is not None and span.parent.span_id == call.context.span_id
    )
    assert upstream.name == "tools/call add"
    # The upstream fixture server's own spans cannot be seen from here, but the SDK client span under ours is
    # in the same trace: the request it sent carried our trace context in `_meta`.
    assert any(span.parent is not None and span.parent.span_id == upstream.context.span_id for span in in_trace)
    assert not any(LIMITED_KEY in str(value) for span in spans for value in (span.attributes or {}).values())


async def test_an_mcp_call_continues_the_clients_trace_from_meta(gateway: Gateway) -> None:
    exporter = span_exporter()
    exporter.clear()
    async with gateway.client(LIMITED_KEY, "2026-07-28") as client:
        result = await client.call_tool("fx__add", {"a": 2, "b": 3})
    assert result.structured_content == {"result": 5}
    spans = exporter.get_finished_spans()
    # The SDK client in this test process records its own span and sends its traceparent in `_meta`.
    sent = next(span for span in spans if span.name == "MCP send tools/call fx__add")
    received = next(span for span in spans if span.kind == SpanKind.SERVER and span.name == "tools/call fx__add")
    call = next(span for span in spans if span.kind == SpanKind.INTERNAL and span.name == "tools/call fx__add")
    assert received.parent is not None and received.parent.span_id == sent.context.span_id
    assert call.parent is not None and call.parent.span_id == received.context.span_id
    assert call.context.trace_id == sent.context.trace_id
