"""The SDK's OpenTelemetry server middleware, skipped for a request where it could change nothing.

The SDK wraps every request in a span (`mcp.server._otel.OpenTelemetryMiddleware`). With no tracer provider
installed (`toolpolicy.telemetry.tracing.tracing_on`) that span is the no-op tracer's: the span already current, unless
the request's `_meta` carries a trace context, which then becomes current (and so reaches the upstream request). A
request whose `_meta` has none of the global propagator's fields therefore gets nothing from it but the cost of
building attributes and entering two context managers; `QuietTracing` passes such a request straight on and hands
every other one to the SDK's middleware unchanged.

With a tracer provider every request goes through the SDK's middleware, its own code (so its span's name,
attributes, status and a recorded exception's stack trace are the SDK's), run with two helpers of its module
replaced: its span is entered as one object (`CurrentSpan`) rather than three generator context managers (the SDK's
`otel_span`, the proxy tracer's, the tracer's), and a `_meta` without any of the default (W3C) propagators' fields
is not run through the propagators, which would find no context in it (the SDK then starts the span under the
current one).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from mcp.server import ServerRequestContext
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware
from mcp.shared import _otel as sdk_otel
from opentelemetry.context import Context
from opentelemetry.propagate import get_global_textmap
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind

from toolpolicy.telemetry.current_span import CurrentSpan
from toolpolicy.telemetry.tracing import tracing_on, w3c_default


class QuietTracing:
    """`inner` (the SDK's middleware), for a request it could make a difference to (see the module doc)."""

    def __init__(self, inner: ServerMiddleware[Any]) -> None:
        self.inner = inner
        self.traced = _quick(inner) if type(inner) is OpenTelemetryMiddleware else None
        """The SDK's `__call__` with the quicker helpers, for the SDK's own class (not a subclass of it)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if self.passes_on(ctx):
            return await call_next(ctx)
        if self.traced is not None and tracing_on():
            result: HandlerResult = await self.traced(self.inner, ctx, call_next)
            return result
        return await self.inner(ctx, call_next)

    def passes_on(self, ctx: ServerRequestContext[Any, Any]) -> bool:
        """Whether `ctx` goes straight to the next link, the SDK's middleware skipped."""
        return not (tracing_on() or _carries_context(ctx.meta))


Traced = Callable[[ServerMiddleware[Any], ServerRequestContext[Any, Any], CallNext], Coroutine[Any, Any, Any]]
_HELPERS = ("otel_span", "extract_trace_context")
"""The helpers of the SDK's middleware module that `_quick` replaces."""


def _quick(inner: OpenTelemetryMiddleware) -> Traced | None:
    """`type(inner).__call__`, the same code, its helpers `otel_span` and `extract_trace_context` replaced in a copy
    of its module's namespace (the SDK's module keeps its own); None if it does not use them as expected."""
    function = getattr(type(inner).__call__, "__func__", type(inner).__call__)
    code = getattr(function, "__code__", None)
    if not isinstance(function, types.FunctionType) or code is None or not set(_HELPERS) <= set(code.co_names):
        return None
    namespace = {**function.__globals__, "otel_span": _otel_span, "extract_trace_context": _extract_trace_context}
    quick = types.FunctionType(code, namespace, function.__name__, function.__defaults__, function.__closure__)
    quick.__kwdefaults__ = function.__kwdefaults__
    return quick


def _otel_span(
    name: str,
    *,
    kind: SpanKind,
    attributes: dict[str, Any] | None = None,
    context: Context | None = None,
    record_exception: bool = True,
    set_status_on_exception: bool = True,
) -> CurrentSpan:
    """`mcp.shared._otel.otel_span`: the span of the SDK's tracer, current in the block, as one object."""
    arguments = (name, context, kind, attributes, (), None, record_exception, set_status_on_exception)
    return CurrentSpan(sdk_otel._tracer, arguments)


def _extract_trace_context(meta: Mapping[str, Any] | None) -> Context | None:
    """`mcp.shared._otel.extract_trace_context`, which finds no context (None) in a `_meta` without any of the
    default propagators' fields, without running them."""
    textmap = get_global_textmap()
    if meta and w3c_default(textmap) and _fields_of(textmap).isdisjoint(meta):
        return None
    return sdk_otel.extract_trace_context(meta)


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
