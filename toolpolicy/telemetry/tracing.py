"""OpenTelemetry traces: off (no-op spans) unless an OTLP endpoint is configured.

The halves open spans with `request_span` and `child_span`; names and attributes follow the GenAI and MCP semantic
conventions (`gen_ai.*`, `mcp.*`). W3C `traceparent` is continued from the caller and injected into upstream calls.

The helpers take attributes of plain scalar values (str, bool, int, float; None is left out): with the light
provider a span copies them without checking each value's type (`LightTracer.start_noted`, `add_attributes`), and
any other value is cleaned on the exporter thread by the SDK's rules instead of when it is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import MappingProxyType
from typing import Any

from opentelemetry import baggage, context as otel_context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import (
    INVALID_SPAN,
    INVALID_SPAN_CONTEXT,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from toolpolicy.telemetry.current_span import CURRENT_CONTEXT, DIRECT, CurrentSpan

logger = logging.getLogger(__name__)
TRACER_NAME = "isthmus"
_NOT_RECORDING = (ProxyTracerProvider, NoOpTracerProvider)
_tracer: trace.Tracer | None = None
_W3C_DEFAULT = (TraceContextTextMapPropagator, W3CBaggagePropagator)
_checked_propagator: TextMapPropagator | None = None
_propagator_is_w3c_default = False


def setup_tracing(
    *, endpoint: str | None, service_name: str, headers: Mapping[str, str] | None = None, sample_ratio: float = 1.0
) -> Any:
    """Install a tracer provider exporting OTLP over HTTP/protobuf; returns it (or None when tracing is off).

    The provider is `LightTracerProvider` (light span records, encoded on the exporter thread) unless the OTel
    environment asks for something only the SDK's `TracerProvider` does (`needs_sdk`); either exports the same
    spans through the same batch processor and exporter."""
    if not endpoint:
        return None
    provider = make_provider(endpoint, service_name, headers, sample_ratio)
    trace.set_tracer_provider(provider)
    logger.info("tracing: exporting spans to %s", provider_endpoint(endpoint))
    return provider


SDK_ONLY_SETTINGS = (
    "OTEL_SDK_DISABLED",
    "OTEL_PYTHON_ID_GENERATOR",
    "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED",
    "OTEL_PYTHON_TRACER_PROVIDER",
)
"""OTel environment variables the light provider does not implement: with one set, the SDK's provider is used."""


def needs_sdk(environ: Mapping[str, str]) -> bool:
    return any(environ.get(name, "").strip() for name in SDK_ONLY_SETTINGS)


def provider_endpoint(endpoint: str) -> str:
    return endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"


def make_provider(
    endpoint: str, service_name: str, headers: Mapping[str, str] | None = None, sample_ratio: float = 1.0
) -> trace.TracerProvider:
    """The provider `setup_tracing` installs, not yet installed."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from toolpolicy.telemetry.light_spans import LightTracerProvider
    from toolpolicy.telemetry.otlp_export import FastOTLPSpanExporter
    from toolpolicy.telemetry.span_queue import LightBatchSpanProcessor

    # Larger batches than the SDK's defaults (512 of at most 2,048 queued): fewer exports, each encoded in one go,
    # and no spans dropped when a burst of requests outpaces one export. OTEL_BSP_* variables still override these.
    processor = LightBatchSpanProcessor(
        FastOTLPSpanExporter(endpoint=provider_endpoint(endpoint), headers=dict(headers or {})),
        max_queue_size=_env_int("OTEL_BSP_MAX_QUEUE_SIZE", 8192),
        max_export_batch_size=_env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 2048),
    )
    resource = Resource.create({"service.name": service_name})
    if not needs_sdk(os.environ):
        return LightTracerProvider(resource=resource, processor=processor, sample_ratio=sample_ratio)
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
    provider.add_span_processor(processor)
    return provider


_PROVIDER_FROM_ENV = bool(os.environ.get(OTEL_PYTHON_TRACER_PROVIDER))
"""Read once: the API reads the environment on each `get_tracer_provider()` while no provider is installed."""


def tracing_on() -> bool:
    """Whether a tracer provider is installed (`setup_tracing`, or a test's). Without one every span is the invalid
    no-op span, so the request paths skip making them: nothing is recorded, propagated or exported either way.

    Reads the API's global (set once per process) rather than calling `get_tracer_provider()`, which reads the
    environment each time while none is installed, i.e. on every request of a gateway without tracing; and checks
    the provider's type once per provider (an `isinstance` against the API's abstract classes is a Python call)."""
    global _checked_provider, _provider_records
    provider = trace._TRACER_PROVIDER
    if provider is _checked_provider and provider is not None:
        return _provider_records
    if provider is None:
        if not _PROVIDER_FROM_ENV:
            return False
        provider = trace.get_tracer_provider()  # loads the one the environment names
    _provider_records = not isinstance(provider, _NOT_RECORDING)
    _checked_provider = provider
    return _provider_records


_checked_provider: trace.TracerProvider | None = None
_provider_records = False


def tracer() -> trace.Tracer:
    """The gateway's tracer, made once a provider is installed (a provider can be installed once per process)."""
    global _tracer, _start_noted, _light_span
    if _tracer is None:
        if not tracing_on():
            return trace.get_tracer(TRACER_NAME)
        _tracer = trace.get_tracer(TRACER_NAME)
        if CURRENT_CONTEXT is not None:
            _start_noted = getattr(_tracer, "start_noted", None)
        if _start_noted is not None:
            from toolpolicy.telemetry.light_spans import LightSpan

            _light_span = LightSpan
    return _tracer


_CURRENT: Any = CURRENT_CONTEXT
"""The current context's variable, read directly where `_start_noted` is set (only then)."""
_start_noted: Any = None
"""`LightTracer.start_noted` of the gateway's tracer: a span under a light one, current in its block, as one object,
or a new trace's first span (None with another tracer, or where the current context is not read directly)."""
_light_span: Any = None
"""`light_spans.LightSpan`, once the gateway's tracer makes them."""


@contextmanager
def request_span(
    name: str, carrier: Mapping[str, str] | None, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """A server span continuing the caller's trace (`traceparent` in `carrier`, e.g. HTTP headers or `_meta`)."""
    parent = _extract(carrier)
    token = otel_context.attach(parent) if parent is not None else None
    try:
        with tracer().start_as_current_span(name, kind=SpanKind.SERVER, attributes=_clean(attributes)) as span:
            yield span
    finally:
        if token is not None:
            otel_context.detach(token)


def _extract(carrier: Mapping[str, str] | None) -> otel_context.Context | None:
    """The caller's context from `carrier` (None without a carrier: the current one).

    With the default propagators a carrier without `traceparent` or `baggage` (most requests) gives what they
    would give, an empty context (the span starts a trace), without running them."""
    if not carrier:
        return None
    if "traceparent" not in carrier and "baggage" not in carrier and w3c_default(propagate.get_global_textmap()):
        return _EMPTY_CONTEXT
    return propagate.extract(carrier)


_EMPTY_CONTEXT = otel_context.Context()
"""What the default propagators extract from a carrier without their headers: one shared empty context (a
`Context` refuses changes, and a tracer only reads the parent span from it)."""


def nothing_to_trace() -> bool:
    """Whether a span started now under the current one would be the invalid span, and its block see no change.

    With no tracer provider the no-op tracer's span copies the current span's context, and making it current
    changes nothing when that context is the invalid one (no trace continued): such a span is skipped. The span
    helpers below test its first line themselves before calling it: with tracing on, the answer without a call."""
    if _provider_records and trace._TRACER_PROVIDER is _checked_provider:  # `tracing_on()`, without the call
        return False
    return not tracing_on() and not trace.get_current_span().get_span_context().is_valid


def child_span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Span]:
    """A client span for one upstream attempt or tool call, under the current span."""
    if not (_provider_records and trace._TRACER_PROVIDER is _checked_provider) and nothing_to_trace():
        return _NOTHING
    return _current(name, None, SpanKind.CLIENT, attributes)


def start_server_span(
    name: str, carrier: Mapping[str, str] | None, attributes: Mapping[str, Any] | None = None
) -> Span:
    """A server span continuing the caller's trace, not made current: for requests that end in another task
    (a stream ends when its body is sent). End it with `span.end()`."""
    if not (_provider_records and trace._TRACER_PROVIDER is _checked_provider) and not tracing_on():
        return INVALID_SPAN  # what the no-op tracer gives, without reading the carrier
    # `_extract(carrier)`, its usual case (no trace header, the default propagators, checked before) without its
    # two calls: this runs for every request.
    if (
        carrier
        and "traceparent" not in carrier
        and "baggage" not in carrier
        and _propagator_is_w3c_default
        and _get_textmap() is _checked_propagator
    ):
        parent: otel_context.Context | None = _EMPTY_CONTEXT
    else:
        parent = _extract(carrier)
    if attributes and None in attributes.values():
        attributes = _clean(attributes)
    started = _tracer or tracer()
    if parent is _EMPTY_CONTEXT and _start_noted is not None:
        span = _start_noted(name, None, _SERVER, attributes, False)
        if span is not None:
            return span  # type: ignore[no-any-return]
    return started.start_span(name, parent, _SERVER, attributes)


_get_textmap = propagate.get_global_textmap


def span_under(
    parent: Span | None, name: str, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[Span]:
    """A client span under `parent` (or the current span), current inside the block so upstream calls carry it."""
    if not (_provider_records and trace._TRACER_PROVIDER is _checked_provider) and nothing_to_trace():
        # The no-op tracer's span is the invalid one, and so is the current span: nothing to make current, and
        # nothing for upstream calls to carry.
        return _NOTHING
    if not attributes or None in attributes.values():  # `_current`, inlined: one frame less per attempt
        attributes = _clean(attributes)
    started = _tracer or tracer()
    if _start_noted is not None:  # the usual case: a light span, its own block
        span = _start_noted(
            name, parent if parent is not None else _CURRENT.get().get(_SPAN_KEY), _CLIENT, attributes, True
        )
        if span is not None:
            return span  # type: ignore[no-any-return]
    # The tracer reads only the parent span from the context it is given (and `CurrentSpan` makes the current
    # context with the new span), so the parent alone goes in: `set_span_in_context` would copy the current context
    # first, in three Python calls.
    context = _Context({_SPAN_KEY: parent}) if parent is not None else None
    # `CurrentSpan(tracer, arguments)` with its fields set here: calling a class with an `__init__` costs a frame.
    block = _new_block(CurrentSpan)
    block.tracer, block.end_on_exit = started, True
    block.arguments = (name, context, _CLIENT, attributes, (), None, True, True)
    return block


_new_block = object.__new__


_Context = otel_context.Context


def operation_span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Span]:
    """An internal span under the current one (e.g. the MCP SDK's server span of the request)."""
    if not (_provider_records and trace._TRACER_PROVIDER is _checked_provider) and nothing_to_trace():
        return _NOTHING
    return _current(name, None, _INTERNAL, attributes)


_CLIENT, _INTERNAL, _SERVER = SpanKind.CLIENT, SpanKind.INTERNAL, SpanKind.SERVER


_NOTHING = nullcontext(INVALID_SPAN)
"""What a skipped span's block gets: the invalid span, and the current context left as it is."""


def _current(
    name: str, context: otel_context.Context | None, kind: SpanKind, attributes: Mapping[str, Any] | None
) -> AbstractContextManager[Span]:
    """What `start_as_current_span` does, with any provider, without its two layers of generator context managers:
    the span starts on entering the block and is current inside it, is ended after it, and an exception leaving it
    is recorded and set as the span's status."""
    if not attributes or None in attributes.values():
        attributes = _clean(attributes)
    started = _tracer or tracer()
    if context is None and _start_noted is not None:  # under the current span: a light one, the usual case
        span = _start_noted(name, _CURRENT.get().get(_SPAN_KEY), kind, attributes, True)
        if span is not None:
            return span  # type: ignore[no-any-return]
    return CurrentSpan(started, (name, context, kind, attributes, (), None, True, True))


def inject(carrier: MutableMapping[str, str]) -> None:
    """Add `traceparent` (and `tracestate`) of the current span to outgoing headers.

    With the default propagators (W3C trace context and baggage) and no baggage set, that is all they would write:
    the header is formatted here, without going through each propagator. Otherwise the configured ones run."""
    # The current context and its baggage read where the API keeps them, when its internals are known, without the
    # Python calls of `get_current()` and `baggage.get_all()` (which wraps the baggage in a new mapping proxy each
    # time): inject runs for every upstream call, traced or not.
    variable = CURRENT_CONTEXT if DIRECT else None
    current = variable.get() if variable is not None else otel_context.get_current()
    textmap = propagate.get_global_textmap()  # `w3c_default`, without its call once the propagator is checked
    w3c = _propagator_is_w3c_default if textmap is _checked_propagator else w3c_default(textmap)
    if w3c and not (current.get(_BAGGAGE_KEY) if _BAGGAGE_KEY is not None else baggage.get_all(current)):
        # `trace.get_current_span(current)`, its check that the value is a `Span` (an ABC: a Python call) made
        # once per type.
        span: Any = current.get(_SPAN_KEY)
        # A `SpanContext` is a tuple (trace id, span id, is remote, flags, state, ...): indexing it spares a
        # Python call per property.
        if type(span) is _light_span:
            # A light span's context, read from its slot, is valid and its ids in range: both as hex in one step,
            # one 24-byte number split by `hex`'s separator (~2k Ir less than `%032x` and `%016x`).
            context = span.context
            ids = (context[0] << 64 | context[1]).to_bytes(24, "big").hex("-", -16)
            carrier["traceparent"] = f"00-{ids}{_FLAGS_TEXT[context[3]]}"
        else:
            if span is None or type(span) not in _SPAN_TYPES and not _is_span(span):
                return
            context = span.get_span_context()
            if context == INVALID_SPAN_CONTEXT:
                return
            carrier["traceparent"] = _TRACEPARENT % (context[0], context[1], context[3])
        state = context[4]
        if state is not DEFAULT_TRACE_STATE and state:
            carrier["tracestate"] = state.to_header()
        return
    propagate.inject(carrier)


_TRACEPARENT = "00-%032x-%016x-%02x"
_FLAGS_TEXT = tuple(f"-{flags:02x}" for flags in range(256))
"""The end of a `traceparent`: its trace flags (one byte)."""
_SPAN_TYPES: set[type] = set()
"""Types of the current spans `inject` has found to be `Span`s."""


def _is_span(value: object) -> bool:
    if isinstance(value, Span):
        _SPAN_TYPES.add(type(value))
        return True
    return False


_BAGGAGE_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)
"""Where the API keeps the baggage in a context (`baggage.get_all` wraps it in a new mapping proxy each time)."""


def w3c_default(propagator: TextMapPropagator) -> bool:
    """Whether `propagator` is the default composite of W3C trace context and baggage (checked once per object)."""
    global _checked_propagator, _propagator_is_w3c_default
    if propagator is not _checked_propagator:
        inner = getattr(propagator, "_propagators", None) if isinstance(propagator, CompositePropagator) else None
        _propagator_is_w3c_default = inner is not None and tuple(type(p) for p in inner) == _W3C_DEFAULT
        _checked_propagator = propagator
    return _propagator_is_w3c_default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


def add_attributes(span: Span, attributes: Mapping[str, Any]) -> None:
    """`span.set_attributes(attributes)` for attributes as the span helpers take them: plain scalar values (str,
    bool, int, float), none None. A light span keeps a copy without checking each value's type first, as
    `LightTracer.start_noted` does (~5k Ir for the twelve of a chat request's span); anything else is cleaned on
    the exporter thread by the SDK's rules."""
    if type(span) is _light_span and span.end_time is None:  # type: ignore[attr-defined]
        span.entries.append(attributes.copy() if type(attributes) is dict else dict(attributes))  # type: ignore[attr-defined]
    else:
        span.set_attributes(attributes)


def mark_error(span: Span, message: str) -> None:
    span.set_status(Status(StatusCode.ERROR, message))


def _clean(attributes: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """`attributes` without the None values (which the SDK would drop with a warning each). Most have none: those
    are passed on as they are (checked in C by `in`, which tries identity first; a value merely equal to None goes
    on to the filter below, which keeps it), and the span copies them as it copies any."""
    if not attributes:
        return _NO_ATTRIBUTES
    if None not in attributes.values():
        return attributes
    return {key: value for key, value in attributes.items() if value is not None}


_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})
