"""A tracer provider whose spans are light records, exported in batches as OTLP.

The SDK's spans do their bookkeeping while the request runs: a lock per call, attribute values cleaned and bounded
one by one, a span processor chain on start and end, and a second `ReadableSpan` object made at the end. Here a
span only notes what it is told (names, ids, times, attributes as given) and is queued when it ends; what the SDK
would have done with those notes (cleaning values, applying the span limits, the order of re-set keys) is done on
the exporter thread, with the SDK's own `BoundedAttributes` where a value is not a plain scalar. The spans exported
are the ones the SDK's `TracerProvider` with a `ParentBased(TraceIdRatioBased(ratio))` sampler and a
`BatchSpanProcessor` would export: same names, kinds, attributes, events, links, status, parents and ids' flags.
W3C propagation is unchanged: spans carry a standard `SpanContext` in the standard OTel context.

Unlike the SDK's spans these take no lock: a span is changed by the code that made it (on the event loop's thread)
and read by the exporter thread only once it has ended. What the SDK's provider offers beyond this (its own span
metrics, other id generators, a provider named in the environment) keeps the SDK's provider: see
`tracing.needs_sdk`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from random import getrandbits
from time import time_ns
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context, trace
from opentelemetry.attributes import BoundedAttributes, _clean_attribute_value
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY as _CURRENT_SPAN_KEY
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState
from opentelemetry.util import types

from toolpolicy.telemetry.current_span import CURRENT_CONTEXT, CurrentSpan, attach_span

logger = logging.getLogger(__name__)

UNSET_STATUS = Status(StatusCode.UNSET)
"""A light span's status until one is set (the encoder knows it by identity)."""
_SCALARS = frozenset((str, bool, int, float))
_all_scalars = _SCALARS.issuperset
_TRACE_ID_LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT
_SPAN_KEY = _CURRENT_SPAN_KEY
_get_current = otel_context.get_current
_NO_STATE = DEFAULT_TRACE_STATE
_span_id = RandomIdGenerator().generate_span_id
"""Draws again when `getrandbits` gave 0, the invalid id."""
_trace_id = RandomIdGenerator().generate_trace_id


_new_span = object.__new__
_NONE: Mapping[str, Any] = {}
"""No attributes (never changed)."""
_IN_BLOCK = object()
"""`LightSpan.token` of a span the helpers made (`LightTracer.start_noted`) until its block is entered."""

_known_valid: Callable[[type[SpanContext], tuple[int, int, bool, TraceFlags, TraceState, bool]], SpanContext] = (
    tuple.__new__
)
"""`_known_valid(SpanContext, (trace_id, span_id, False, flags, state, True))` is `SpanContext(trace_id, span_id,
False, flags, state)` without checking the ids (drawn by `getrandbits`, non-zero, or the ids of a valid parent), and
without a Python call of its own."""


_SAMPLED, _RANDOM = TraceFlags.SAMPLED, TraceFlags.RANDOM_TRACE_ID
_FLAGS = {
    (sampled, random): TraceFlags((_SAMPLED if sampled else 0) | (_RANDOM if random else 0))
    for sampled in (False, True)
    for random in (False, True)
}


class LightTracerProvider(trace.TracerProvider):
    """Tracers of `LightSpan`s sampled like `ParentBased(TraceIdRatioBased(sample_ratio))`, each ended span handed
    to `processor` (`span_queue.LightBatchSpanProcessor`, whose exporter takes them: `FastOTLPSpanExporter`)."""

    def __init__(
        self,
        *,
        resource: Resource,
        processor: SpanProcessor,
        sample_ratio: float = 1.0,
        id_generator: IdGenerator | None = None,
        limits: SpanLimits | None = None,
        shutdown_on_exit: bool = True,
    ) -> None:
        self.resource = resource
        self.processor = processor
        self.id_generator = id_generator or RandomIdGenerator()
        self.limits = limits or SpanLimits()
        self.bound = TraceIdRatioBased.get_bound_for_rate(sample_ratio)
        self._lock = threading.Lock()
        self.tracers: dict[InstrumentationScope, LightTracer] = {}
        self._atexit = atexit.register(self.shutdown) if shutdown_on_exit else None

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> LightTracer:
        scope = InstrumentationScope(
            instrumenting_module_name or "", instrumenting_library_version or "", schema_url, attributes
        )
        with self._lock:  # one tracer per scope, as the SDK's provider keeps them
            found = self.tracers.get(scope)
            if found is None:
                found = self.tracers[scope] = LightTracer(self, scope)
            return found

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.processor.shutdown()
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None


class LightTracer(trace.Tracer):
    """What the SDK's `Tracer` does for a sampled span, minus the per-span objects it does not need."""

    def __init__(self, provider: LightTracerProvider, scope: InstrumentationScope) -> None:
        self.provider = provider
        self.instrumentation_scope = scope
        self.on_end: Callable[[LightSpan], None] = provider.processor.on_end  # type: ignore[assignment]
        """Where an ended span goes: it is read as the SDK's `ReadableSpan` (`FastOTLPSpanExporter` encodes it)."""
        direct = getattr(provider.processor, "direct_batching", None)
        self.batching: Any = direct() if direct is not None else None
        """The SDK's batch processor behind `on_end`, when `span_queue.LightBatchSpanProcessor` knows its internals:
        `LightSpan.end` queues the usual span on it itself, without the call to `on_end`."""
        self.random_ids = type(provider.id_generator) is RandomIdGenerator
        """Ids drawn here as `RandomIdGenerator` draws them (and known valid), without a call to it per span."""

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent: SpanContext | None
        if context is None:
            # The current context read where the default runtime context keeps it (`get_current()` is two calls).
            context = CURRENT_CONTEXT.get() if CURRENT_CONTEXT is not None else _get_current()
        current = context.get(_SPAN_KEY)
        # `_noted(attributes)`, its usual case (plain scalars: `start_noted` copies them) without the call
        noted = attributes if not attributes or _all_scalars(map(type, attributes.values())) else _noted(attributes)
        span: trace.Span | None = None
        if current is None or type(current) is LightSpan:  # the usual cases: a new trace, a light parent
            span = self.start_noted(name, current, kind, noted or _NONE, False)
        if span is None:  # another id generator, or another parent
            span_context = self._sampled_context(context)
            if not span_context.trace_flags.sampled:
                return NonRecordingSpan(span_context)
            parent = trace.get_current_span(context).get_span_context()
            span = self._recorded(name, span_context, parent if parent.is_valid else None, kind, noted or _NONE, None)
        if type(span) is LightSpan:  # what the helpers leave at its default
            span._record_exception = record_exception
            span._set_status_on_exception = set_status_on_exception
            if links:
                for link in links:
                    if link:
                        span.add_link(link.context, link.attributes)
            if start_time is not None:
                span.start_time = start_time
        return span

    def start_noted(
        self, name: str, parent: trace.Span | None, kind: SpanKind, attributes: Mapping[str, Any], in_block: bool
    ) -> trace.Span | None:
        """What the span helpers (`tracing`) start: under `parent` when it is a light span, a span whose `with`
        block makes it current (`in_block`, as `start_as_current_span` does) in one object; with no `parent` and
        not `in_block`, a new trace's first span (the request's server span), not made current. None for anything
        else, or when ids are not drawn here: the helpers then go through `start_span`.

        `attributes` are copied but not cleaned: the helpers' callers give plain scalars (anything else is cleaned
        on the exporter thread, by the SDK's rules). Per chat request this spares `start_span`'s nine arguments, a
        context holding the parent, a `CurrentSpan` and passes over the attributes' types (~12k Ir of ~47k)."""
        if not self.random_ids:
            return None
        if type(parent) is LightSpan:
            context = parent.context
            span_context = _known_valid(
                SpanContext, (context[0], getrandbits(64) or _span_id(), False, context[3], context[4], True)
            )
        elif parent is None and not in_block:
            context = None
            trace_id = getrandbits(128) or _trace_id()
            if trace_id & _TRACE_ID_LIMIT >= self.provider.bound:
                return NonRecordingSpan(SpanContext(trace_id, _span_id(), False, _FLAGS[False, True]))
            span_context = _known_valid(
                SpanContext, (trace_id, getrandbits(64) or _span_id(), False, _FLAGS[True, True], _NO_STATE, True)
            )
        else:
            return None
        return self._recorded(name, span_context, context, kind, attributes, _IN_BLOCK if in_block else None)

    def _recorded(
        self,
        name: str,
        span_context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any],
        token: Any,
    ) -> LightSpan:
        """A recorded span with these fields and a copy of `attributes` (plain scalars, or cleaned already). Its
        fields are set here rather than by an `__init__`: calling a class with one costs a second frame."""
        span = _new_span(LightSpan)
        span.tracer = self
        span._name = name
        span.context = span_context
        span.parent = parent
        span.kind = kind
        span.entries = [attributes.copy() if type(attributes) is dict else dict(attributes)] if attributes else []
        span.events = span.links = ()
        span._status = UNSET_STATUS
        span._record_exception = span._set_status_on_exception = True
        span.end_time = None
        span.token = token
        span.start_time = time_ns()
        return span

    def _sampled_context(self, context: otel_context.Context | None) -> SpanContext:
        """A new span's context, any parent, any id generator: its flags say whether the span is recorded."""
        ids = self.provider.id_generator
        parent = trace.get_current_span(context).get_span_context()
        if parent is None or not parent.is_valid:
            trace_id = ids.generate_trace_id()
            sampled = trace_id & _TRACE_ID_LIMIT < self.provider.bound
            return SpanContext(trace_id, ids.generate_span_id(), False, _FLAGS[sampled, ids.is_trace_id_random()])
        # ParentBased: a sampled parent's span is recorded, any other dropped
        flags = _FLAGS[parent.trace_flags.sampled, parent.trace_flags.random_trace_id]
        return SpanContext(parent.trace_id, ids.generate_span_id(), False, flags, parent.trace_state)

    def start_as_current_span(  # type: ignore[override]  # a context manager object, as the SDK's is
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> CurrentSpan:
        return CurrentSpan(
            self,
            (name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception),
            end_on_exit,
        )


def _noted(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `attributes` as the span keeps it until export. Plain scalars are kept as given (cleaned on the
    exporter thread); anything else is cleaned now, as the SDK does, so a list changed later is not exported
    changed."""
    noted = dict(attributes)
    if _all_scalars(map(type, noted.values())):  # one pass in C; keys are left to `bounded_attributes`
        return noted
    return {key: _clean_attribute_value(value, None) for key, value in noted.items()}


class LightSpan(trace.Span):
    """A recorded span: what it was told, kept as given until the exporter thread encodes it. Made only by
    `LightTracer.start_span`, which sets every field.

    `entries`: the attributes in the order they were set, whole mappings (the start's, `set_attributes`) and single
    ones. `events` and `links` are empty tuples until something is added: no object of their own for the collector
    to walk."""

    tracer: LightTracer
    _name: str
    context: SpanContext
    parent: SpanContext | None
    kind: SpanKind
    entries: list[dict[str, Any] | tuple[str, Any]]
    events: Sequence[Event]
    links: Sequence[Link]
    _status: Status
    _record_exception: bool
    _set_status_on_exception: bool
    start_time: int
    end_time: int | None
    token: Any

    __slots__ = (
        "_name",
        "_record_exception",
        "_set_status_on_exception",
        "_status",
        "context",
        "end_time",
        "entries",
        "events",
        "kind",
        "links",
        "parent",
        "start_time",
        "token",
        "tracer",
    )

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self._name}", context={self.context})'

    @property
    def name(self) -> str:
        return self._name

    @property
    def status(self) -> Status:
        return self._status

    @property
    def resource(self) -> Resource:
        return self.tracer.provider.resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        return self.tracer.instrumentation_scope

    @property
    def limits(self) -> SpanLimits:
        return self.tracer.provider.limits

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def _ended(self, what: str) -> bool:
        if self.end_time is None:
            return False
        logger.warning("Tried calling %s on an ended span.", what)
        return True

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self.end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        # `_noted(attributes)`, its usual case (plain scalars: a copy) without the call
        self.entries.append(dict(attributes) if _all_scalars(map(type, attributes.values())) else _noted(attributes))

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        if type(value) not in _SCALARS:
            value = _clean_attribute_value(value, None)
        self.entries.append((key, value))

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if not self._ended("add_event"):
            noted = _noted(attributes) if attributes else None
            events = self.events if isinstance(self.events, list) else []
            events.append(Event(name, noted, timestamp if timestamp is not None else time_ns()))
            self.events = events

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return  # what the SDK keeps of a link (`_is_valid_link`)
        if not self._ended("add_link"):
            links = self.links if isinstance(self.links, list) else []
            links.append(Link(context, _noted(attributes) if attributes else None))
            self.links = links

    def update_name(self, name: str) -> None:
        if self.end_time is None:  # `_ended`, its usual answer without the call: the request span is renamed
            self._name = name
        else:
            self._ended("update_name")

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._ended("set_status"):
            return
        # As the SDK: an OK status is final, and setting UNSET changes nothing.
        if self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                logger.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`", description
                )
            self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module, qualname = type(exception).__module__, type(exception).__qualname__
        noted: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            noted.update(attributes)
        self.add_event("exception", noted, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            logger.warning("Calling end() on an ended span.")
            return
        self.end_time = end_time if end_time is not None else time_ns()
        # What `LightBatchSpanProcessor.on_end` does with the usual span, without the call: onto the SDK's queue,
        # waking its worker once a batch is queued. Any other case (shut down, a full queue: dropped with the SDK's
        # warning and count; internals it does not know) goes its way.
        batching = self.tracer.batching
        if batching is None or batching._shutdown or len(queue := batching._queue) >= batching._max_queue_size:
            self.tracer.on_end(self)
            return
        queue.appendleft(self)
        if len(queue) >= batching._max_export_batch_size and not batching._worker_awaken.is_set():
            batching._worker_awaken.set()

    def __enter__(self) -> LightSpan:
        if self.token is _IN_BLOCK:  # a span helper's: current inside its block
            self.token = attach_span(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> None:
        token = self.token
        if token is not None and token is not _IN_BLOCK:
            self.token = None
            self._leave_block(token, exc_val)
            return
        if exc_val is not None and self.is_recording():
            if self._record_exception:
                self.record_exception(exception=exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()

    def _leave_block(self, token: Any, exc_val: BaseException | None) -> None:
        """What `CurrentSpan.__exit__` does: the context back as it was, an Exception (not a BaseException such as
        GeneratorExit) recorded and set as the status, and the span ended."""
        try:
            variable = CURRENT_CONTEXT
            if variable is not None:
                try:
                    variable.reset(token)
                except Exception:  # the API's detach fails alike, and logs it
                    otel_context.detach(token)
            else:
                otel_context.detach(token)
            if exc_val is not None and isinstance(exc_val, Exception) and self.end_time is None:
                self.record_exception(exc_val)
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        finally:
            self.end()

    # On the exporter thread, once ended.

    def bounded_attributes(self) -> BoundedAttributes:
        limits = self.limits
        bounded = BoundedAttributes(
            limits.max_span_attributes, None, immutable=False, max_value_len=limits.max_span_attribute_length
        )
        for entry in self.entries:
            if isinstance(entry, dict):
                bounded._set_items(entry)
            else:
                bounded[entry[0]] = entry[1]
        bounded._immutable = True
        return bounded

    def readable(self) -> ReadableSpan:
        """The SDK's `ReadableSpan` of this span, with the SDK's limits applied."""
        limits = self.limits
        events: BoundedList[Event] = BoundedList(limits.max_events)
        for event in self.events:
            bounded = BoundedAttributes(
                limits.max_event_attributes, event.attributes, max_value_len=limits.max_attribute_length
            )
            events.append(Event(event.name, bounded, event.timestamp))
        links: BoundedList[Link] = BoundedList(limits.max_links)
        for link in self.links:
            bounded = BoundedAttributes(
                limits.max_link_attributes, link.attributes, max_value_len=limits.max_attribute_length
            )
            links.append(Link(link.context, bounded))
        return ReadableSpan(
            name=self._name,
            context=self.context,
            parent=self.parent,
            resource=self.resource,
            attributes=self.bounded_attributes(),
            events=events,
            links=links,
            kind=self.kind,
            status=self._status,
            start_time=self.start_time,
            end_time=self.end_time,
            instrumentation_scope=self.instrumentation_scope,
        )
