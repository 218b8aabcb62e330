"""Spans of MCP tool calls: the caller's trace continued (HTTP header on REST, `_meta` on MCP), one span per call
with MCP attributes, a child for the upstream call, the trace carried into the upstream server's request."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan
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


async def test_one_mcp_tool_call_is_four_gateway_spans(gateway: Gateway) -> None:
    """The whole span set of one tools/call through the hub: the SDK's server span, the hub's call span, the hub's
    upstream span and the SDK's client span under it (whose traceparent goes to the upstream server in `_meta`)."""
    exporter = span_exporter()
    async with gateway.client(LIMITED_KEY, "2026-07-28") as client:
        exporter.clear()
        result = await client.call_tool("fx__add", {"a": 2, "b": 3})
    assert result.structured_content == {"result": 5}
    spans = exporter.get_finished_spans()
    sent = next(span for span in spans if span.name == "MCP send tools/call fx__add")  # this test's own client
    in_call = [span for span in spans if span.context.trace_id == sent.context.trace_id and span is not sent]
    by_id = {span.context.span_id: span for span in in_call}

    def chain(span: ReadableSpan) -> list[tuple[str, SpanKind]]:
        names = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            names.append((span.name, span.kind))
        return names

    leaf = next(span for span in in_call if span.name == "MCP send tools/call add")
    assert len(in_call) == 4
    assert [(leaf.name, leaf.kind), *chain(leaf)] == [
        ("MCP send tools/call add", SpanKind.CLIENT),
        ("tools/call add", SpanKind.CLIENT),
        ("tools/call fx__add", SpanKind.INTERNAL),
        ("tools/call fx__add", SpanKind.SERVER),
    ]
    upstream = by_id[leaf.parent.span_id] if leaf.parent else None
    assert upstream is not None and upstream.attributes is not None
    assert dict(upstream.attributes) == {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "add",
        "isthmus.mcp.server": "fx",
    }
    call = next(span for span in in_call if span.kind == SpanKind.INTERNAL)
    assert call.attributes is not None
    assert {key: call.attributes[key] for key in call.attributes if key != "isthmus.request_id"} == {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "fx__add",
        "isthmus.key.name": "limited",
        "isthmus.team": "agents",
        "isthmus.customer": "acme",
        "isthmus.mcp.server": "fx",
        "isthmus.outcome": "ok",
    }
    received = next(span for span in in_call if span.kind == SpanKind.SERVER)
    assert received.parent is not None and received.parent.span_id == sent.context.span_id
