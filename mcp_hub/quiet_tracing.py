"""The SDK's OpenTelemetry server middleware, skipped for a request where it could change nothing.

The SDK wraps every request in a span (`mcp.server._otel.OpenTelemetryMiddleware`). With no tracer provider
installed (`toolpolicy.telemetry.tracing.tracing_on`) that span is the no-op tracer's: the span already current, unless
the request's `_meta` carries a trace context, which then becomes current (and so reaches the upstream request). A
request whose `_meta` has none of the global propagator's fields therefore gets nothing from it but the cost of
building attributes and entering two context managers; `QuietTracing` passes such a request straight on and hands
every other one to the SDK's middleware unchanged.
"""

from __future__ import annotations

from typing import Any

from mcp.server import ServerRequestContext
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware
from opentelemetry.propagate import get_global_textmap
from opentelemetry.propagators.textmap import TextMapPropagator

from toolpolicy.telemetry.tracing import tracing_on


class QuietTracing:
    """`inner` (the SDK's middleware), for a request it could make a difference to (see the module doc)."""

    def __init__(self, inner: ServerMiddleware[Any]) -> None:
        self.inner = inner

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if self.passes_on(ctx):
            return await call_next(ctx)
        return await self.inner(ctx, call_next)

    def passes_on(self, ctx: ServerRequestContext[Any, Any]) -> bool:
        """Whether `ctx` goes straight to the next link, the SDK's middleware skipped."""
        return not (tracing_on() or _carries_context(ctx.meta))


def _carries_context(meta: Any) -> bool:
    return bool(meta) and not _fields_of(get_global_textmap()).isdisjoint(meta)


_known_fields: tuple[TextMapPropagator | None, frozenset[str]] = (None, frozenset())
"""The global propagator last asked, and its fields."""


def _fields_of(textmap: TextMapPropagator) -> frozenset[str]:
    """`textmap.fields`, kept for the global propagator (replaced only by `set_global_textmap`): a composite's
    `fields` gathers its propagators' fields into a new set on every read, three Python calls a request."""
    global _known_fields
    known, fields = _known_fields
    if known is not textmap:
        fields = frozenset(textmap.fields)
        _known_fields = (textmap, fields)
    return fields


def quieten(middleware: list[ServerMiddleware[Any]]) -> None:
    """Wrap the SDK's OpenTelemetry middleware in `middleware` (a server's list) in place."""
    for index, found in enumerate(middleware):
        if isinstance(found, OpenTelemetryMiddleware):
            middleware[index] = QuietTracing(found)
