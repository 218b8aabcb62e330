"""`QuietTracing` skips the SDK's OpenTelemetry middleware only where it could change nothing: no tracer provider
and no trace context in `_meta`. Without a provider the SDK's span is the no-op tracer's (simulated here with the
API's `NoOpTracer`, since a test session may have installed a real provider), and the span current inside the
handler must be the same either way."""

from __future__ import annotations

import contextlib
from typing import Any, cast

import pytest
from mcp.server import ServerRequestContext
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NoOpTracer, SpanContext
from pydantic import TypeAdapter

import mcp_hub.quiet_tracing
from mcp_hub.quiet_tracing import QuietTracing, quieten
from tests.tracing_support import span_exporter

pytestmark = pytest.mark.anyio

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PROTOCOL = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
METAS: list[dict[str, Any] | None] = [
    None,
    {},
    PROTOCOL,
    {**PROTOCOL, "traceparent": TRACEPARENT},
    {**PROTOCOL, "traceparent": TRACEPARENT, "baggage": "k=v"},
    {**PROTOCOL, "traceparent": "00-garbage"},
]


class Counted:
    def __init__(self) -> None:
        self.inner = OpenTelemetryMiddleware()
        self.calls = 0

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        self.calls += 1
        return await self.inner(ctx, call_next)


def context(meta: dict[str, Any] | None) -> ServerRequestContext[Any, Any]:
    return ServerRequestContext(
        session=cast(Any, None),
        lifespan_context=None,
        protocol_version="2026-07-28",
        method="tools/call",
        params={"name": "x"},
        request_id=1,
        meta=cast(Any, meta),
    )


async def seen_span(middleware: Any, meta: dict[str, Any] | None) -> SpanContext:
    async def call_next(ctx: ServerRequestContext[Any, Any]) -> SpanContext:
        return trace.get_current_span().get_span_context()

    found: SpanContext = await middleware(context(meta), call_next)
    return found


@pytest.mark.parametrize("meta", METAS)
async def test_without_a_provider_the_handler_sees_the_same_span_and_the_sdk_runs_only_for_trace_context(
    monkeypatch: pytest.MonkeyPatch, meta: dict[str, Any] | None
) -> None:
    monkeypatch.setattr("mcp.shared._otel._tracer", NoOpTracer())
    monkeypatch.setattr(mcp_hub.quiet_tracing, "tracing_on", lambda: False)
    counted = Counted()
    assert await seen_span(QuietTracing(counted), meta) == await seen_span(counted.inner, meta)
    assert counted.calls == (1 if meta and "traceparent" in meta else 0)


async def test_with_a_provider_every_request_goes_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_hub.quiet_tracing, "tracing_on", lambda: True)
    counted = Counted()
    for meta in METAS:
        await seen_span(QuietTracing(counted), meta)
    assert counted.calls == len(METAS)


def test_quieten_wraps_the_sdks_middleware_in_place() -> None:
    sdk = OpenTelemetryMiddleware()
    other = Counted()
    middleware: list[Any] = [sdk, other]
    quieten(middleware)
    assert isinstance(middleware[0], QuietTracing) and middleware[0].inner is sdk
    assert middleware[1] is other


def _outcome(kind: str) -> Any:
    """A handler that returns or raises as `kind` says."""

    async def call_next(ctx: ServerRequestContext[Any, Any]) -> Any:
        if kind == "tool error":
            return CallToolResult(content=[TextContent(type="text", text="no")], is_error=True)
        if kind == "mcp error":
            raise MCPError(code=404, message="no such tool")
        if kind == "invalid params":
            TypeAdapter(int).validate_python("not a number")
        if kind == "crash":
            raise RuntimeError("handler crashed")
        return CallToolResult(content=[TextContent(type="text", text="ok")])

    return call_next


def _seen(span: ReadableSpan) -> tuple[Any, ...]:
    """What the sink receives of the span, but its own ids and times (new for each span)."""
    parent = span.parent
    return (
        span.name,
        span.kind,
        span.instrumentation_scope,
        (parent.trace_id, parent.span_id, parent.is_remote) if parent else None,
        format(span.context.trace_id, "032x") if parent else None,
        dict(span.attributes or {}),
        (span.status.status_code, span.status.description),
        [(event.name, dict(event.attributes or {})) for event in span.events],
    )


@pytest.mark.parametrize("kind", ["ok", "tool error", "mcp error", "invalid params", "crash"])
@pytest.mark.parametrize("meta", METAS)
async def test_with_a_provider_the_span_is_the_one_the_sdks_middleware_records(
    monkeypatch: pytest.MonkeyPatch, meta: dict[str, Any] | None, kind: str
) -> None:
    """The SDK's code with the quicker helpers: the same span (name, parent from `_meta` or none, attributes,
    status, a crash's exception event with its stack trace) as the SDK's middleware itself, for every outcome."""
    exporter = span_exporter()
    monkeypatch.setattr(mcp_hub.quiet_tracing, "tracing_on", lambda: True)
    sdk = OpenTelemetryMiddleware()
    quiet = QuietTracing(sdk)
    assert quiet.traced is not None

    async def recorded(middleware: Any) -> tuple[Any, ...]:
        exporter.clear()
        with pytest.raises(Exception) if kind in ("mcp error", "invalid params", "crash") else contextlib.nullcontext():
            await middleware(context(meta), _outcome(kind))
        [span] = exporter.get_finished_spans()
        return _seen(span)

    assert await recorded(quiet) == await recorded(sdk)
