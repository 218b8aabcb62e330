"""The light tracer provider exports what the SDK's provider (same sampler, ids and resource) exports, and carries
the same trace context to upstream calls."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import threading
import uuid
from typing import Any

import pytest
from opentelemetry import context as otel_context, propagate, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from toolpolicy.telemetry import current_span
from toolpolicy.telemetry.light_spans import LightSpan, LightTracerProvider
from toolpolicy.telemetry.otlp_export import encode_request
from toolpolicy.telemetry.span_queue import LightBatchSpanProcessor
from toolpolicy.telemetry.tracing import make_provider, needs_sdk

RESOURCE = Resource.create({"service.name": "isthmus-test"})
SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NOT_SAMPLED = "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00"


class CountingIds(RandomIdGenerator):
    """Ids in sequence; a trace id's low 64 bits alternate between small and large (sampled or not at 0.5)."""

    def __init__(self) -> None:
        self.spans = self.traces = 0

    def generate_span_id(self) -> int:
        self.spans += 1
        return self.spans

    def generate_trace_id(self) -> int:
        self.traces += 1
        return self.traces << 64 | (self.traces if self.traces % 2 else (1 << 64) - self.traces)


def scenario(provider: trace.TracerProvider, request_id: str) -> list[dict[str, str]]:
    """Spans made every way the gateway and the MCP SDK make them; returns what each step would send upstream."""
    tracer = provider.get_tracer("isthmus")
    other = provider.get_tracer("mcp-python-sdk", "2.3.0", schema_url="https://opentelemetry.io/schemas/1.30.0")
    sent: list[dict[str, str]] = []

    def carried() -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        sent.append(carrier)

    caller = propagate.extract({"traceparent": SAMPLED, "tracestate": "vendor=x1,other=y"})
    server = tracer.start_span(
        "chat", caller, SpanKind.SERVER, {"gen_ai.operation.name": "chat", "isthmus.attempt": 1, "flag": True}
    )
    with tracer.start_as_current_span("chat gpt", trace.set_span_in_context(server), SpanKind.CLIENT) as attempt:
        carried()
        attempt.set_attribute("isthmus.attempt", 2)
        attempt.set_attributes({"ratio": 0.25, "gen_ai.request.model": "gpt"})
        attempt.set_status(Status(StatusCode.ERROR, "upstream said no"))
    server.set_attributes({"gen_ai.operation.name": "chat", "usage": 7})  # a key set again moves to the end
    server.update_name("chat gpt-x")
    server.set_status(StatusCode.OK)
    server.set_status(StatusCode.ERROR, "ignored after OK")
    server.end()
    server.end()
    server.set_attribute("late", 1)

    # As a chat request's: a request id no span had before, and the end's attributes (none set again).
    request = tracer.start_span("chat", caller, SpanKind.SERVER, {"gen_ai.operation.name": "chat", "id": request_id})
    with tracer.start_as_current_span("chat gpt", trace.set_span_in_context(request), SpanKind.CLIENT):
        carried()
    request.set_attributes({"http.response.status_code": 200, "isthmus.cost_usd": 0.5, "isthmus.team": request_id})
    request.end()

    with tracer.start_as_current_span("dropped", propagate.extract({"traceparent": NOT_SAMPLED})) as dropped:
        assert not dropped.is_recording()
        carried()

    models = ["a", "b"]
    with tracer.start_as_current_span("roots", attributes={"models": models, "none": None, "": "no key"}) as span:
        models.append("changed later")
        span.set_attribute("bytes", b"\x00\x01")
        span.set_attribute("mixed", [1, None, 2])
        span.add_event("retry", {"attempt": 2, "models": ("x",)})
        carried()
        for n in range(130):
            span.set_attribute(f"a{n}", n)

    with pytest.raises(ValueError), tracer.start_as_current_span("raises", kind=SpanKind.INTERNAL):
        carried()
        raise ValueError("bad")
    with pytest.raises(KeyError), tracer.start_span("span as context manager") as span:
        raise KeyError("k")

    @tracer.start_as_current_span("decorated", kind=SpanKind.CLIENT)
    def decorated() -> None:
        carried()

    decorated()
    decorated()
    with other.start_as_current_span("tools/call add", kind=SpanKind.SERVER, record_exception=False) as span:
        span.add_link(trace.get_current_span().get_span_context(), {"why": "self"})
        span.set_status(StatusCode.ERROR)
        linked = other.start_span("linked", links=[Link(span.get_span_context(), {"n": 1})])
        linked.end()
    return sent


def normalised(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """Without what differs from one run to the next: times and stack traces."""
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                span.start_time_unix_nano = span.end_time_unix_nano = 0
                for event in span.events:
                    event.time_unix_nano = 0
                    for attribute in event.attributes:
                        if attribute.key == "exception.stacktrace":
                            attribute.value.string_value = ""
    return request


@pytest.mark.parametrize("ratio", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("ids", ["counting", "random"])
def test_the_light_provider_exports_and_propagates_what_the_sdk_does(ratio: float, ids: str) -> None:
    def id_generator() -> RandomIdGenerator:
        # The SDK's random ids from a seeded `random`: the light tracer draws its own (for a child of a light span,
        # a new trace) as the SDK's generator would, in the same order, so both providers see the same ids.
        random.seed(13)
        return CountingIds() if ids == "counting" else RandomIdGenerator()

    sdk_exporter = InMemorySpanExporter()
    sdk = TracerProvider(
        resource=RESOURCE,
        sampler=ParentBased(TraceIdRatioBased(ratio)),
        id_generator=id_generator(),
        shutdown_on_exit=False,
    )
    sdk.add_span_processor(SimpleSpanProcessor(sdk_exporter))
    request_id = f"req-{uuid.uuid4()}"
    sent_by_sdk = scenario(sdk, request_id)
    light_exporter = InMemorySpanExporter()
    light = LightTracerProvider(
        resource=RESOURCE,
        processor=SimpleSpanProcessor(light_exporter),
        sample_ratio=ratio,
        id_generator=id_generator(),
        shutdown_on_exit=False,
    )
    sent = scenario(light, request_id)
    assert sent == sent_by_sdk
    assert (
        sent[0]["traceparent"].split("-")[1] == SAMPLED.split("-")[1] and sent[0]["tracestate"] == "vendor=x1,other=y"
    )
    assert sent[2]["traceparent"].endswith("-00")
    spans: list[Any] = list(light_exporter.get_finished_spans())
    expected = normalised(encode_spans(sdk_exporter.get_finished_spans()))
    if ids == "counting":  # random trace ids fall either side of the ratio's bound as they come
        assert len(spans) == len(sdk_exporter.get_finished_spans()) == {1.0: 11, 0.5: 7, 0.0: 4}[ratio]
    assert len(spans) == len(sdk_exporter.get_finished_spans())
    for _ in range(2):  # twice: the second time the attributes come from the encoder's cache
        assert normalised(ExportTraceServiceRequest.FromString(encode_request(spans))) == expected
    readable = [span.readable() for span in spans]
    assert normalised(encode_spans(readable)) == expected


def test_the_sdk_provider_is_kept_for_settings_only_it_implements(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not needs_sdk({"OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "5"})
    assert needs_sdk({"OTEL_PYTHON_ID_GENERATOR": "xray"})
    light = make_provider("http://127.0.0.1:9/", "isthmus")
    assert isinstance(light, LightTracerProvider)
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    sdk = make_provider("http://127.0.0.1:9/", "isthmus")
    assert isinstance(sdk, TracerProvider)
    for provider in (light, sdk):
        provider.shutdown()  # type: ignore[attr-defined]


def test_a_span_limit_from_the_environment_applies_to_light_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")
    exporter = InMemorySpanExporter()
    provider = LightTracerProvider(resource=RESOURCE, processor=SimpleSpanProcessor(exporter), shutdown_on_exit=False)
    with provider.get_tracer("isthmus").start_as_current_span("s", attributes={"a": "long", "b": 1, "c": 2}):
        pass
    [span] = exporter.get_finished_spans()
    [message] = ExportTraceServiceRequest.FromString(encode_request([span])).resource_spans[0].scope_spans[0].spans
    assert [(kv.key, kv.value.int_value) for kv in message.attributes] == [("b", 1), ("c", 2)]
    assert message.dropped_attributes_count == 1


def test_start_as_current_span_decorates_async_functions_a_span_per_call() -> None:
    exporter = InMemorySpanExporter()
    provider = LightTracerProvider(resource=RESOURCE, processor=SimpleSpanProcessor(exporter), shutdown_on_exit=False)

    @provider.get_tracer("isthmus").start_as_current_span("awaited")
    async def awaited() -> trace.Span:
        await asyncio.sleep(0)
        return trace.get_current_span()

    first, second = asyncio.run(awaited()), asyncio.run(awaited())
    assert first is not second and not first.is_recording()
    assert [span.name for span in exporter.get_finished_spans()] == ["awaited", "awaited"]


def test_a_light_span_is_current_in_the_standard_context() -> None:
    provider = LightTracerProvider(
        resource=RESOURCE, processor=SimpleSpanProcessor(InMemorySpanExporter()), shutdown_on_exit=False
    )
    tracer = provider.get_tracer("isthmus")
    assert provider.get_tracer("isthmus") is tracer
    with tracer.start_as_current_span("outer") as outer:
        assert trace.get_current_span() is outer
        inner = tracer.start_span("inner")
        assert isinstance(inner, LightSpan) and inner.parent == outer.get_span_context()
        inner.end()
    assert trace.get_current_span(otel_context.get_current()) is trace.INVALID_SPAN


@pytest.mark.parametrize("direct", [True, False])
def test_a_span_block_left_in_another_context_still_ends_its_span_and_logs_as_the_api_does(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    assert current_span.DIRECT  # this API keeps the context where the block sets it directly
    monkeypatch.setattr(current_span, "DIRECT", direct)  # as with an API whose internals it does not know
    exporter = InMemorySpanExporter()
    provider = LightTracerProvider(resource=RESOURCE, processor=SimpleSpanProcessor(exporter), shutdown_on_exit=False)
    block = provider.get_tracer("isthmus").start_as_current_span("moved")
    span = block.__enter__()
    assert trace.get_current_span() is span
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        contextvars.copy_context().run(block.__exit__, None, None, None)
    assert "Failed to detach context" in caplog.text
    assert [ended.name for ended in exporter.get_finished_spans()] == ["moved"]
    otel_context.detach(block.token)  # in the context it was made current in, it is reset
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_the_light_batch_processor_keeps_the_sdks_batching(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "40")
    provider = make_provider("http://127.0.0.1:9/", "isthmus")
    assert isinstance(provider, LightTracerProvider)
    processor = provider.processor
    assert isinstance(processor, LightBatchSpanProcessor)
    batching = processor._batch_processor
    assert (batching._max_queue_size, batching._max_export_batch_size) == (100, 40)
    provider.shutdown()

    exporter = InMemorySpanExporter()
    processor = LightBatchSpanProcessor(exporter, max_queue_size=100, max_export_batch_size=50)
    light = LightTracerProvider(resource=RESOURCE, processor=processor, shutdown_on_exit=False)
    sdk = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    sdk.add_span_processor(processor)  # the SDK's spans go the SDK's way through the same queue
    for n in range(5):
        light.get_tracer("isthmus").start_span(f"light {n}").end()
        sdk.get_tracer("isthmus").start_span(f"sdk {n}").end()
    assert light.force_flush()
    assert [span.name for span in exporter.get_finished_spans()] == [
        name for n in range(5) for name in (f"light {n}", f"sdk {n}")
    ]
    light.shutdown()
    light.get_tracer("isthmus").start_span("after shutdown").end()
    assert len(exporter.get_finished_spans()) == 10


@pytest.mark.parametrize("direct", [True, False])
def test_the_light_batch_processor_hands_spans_to_the_sdk_unless_it_knows_its_internals(
    monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    exporter = InMemorySpanExporter()
    processor = LightBatchSpanProcessor(exporter, max_queue_size=100, max_export_batch_size=50)
    assert processor._direct  # this SDK's internals are the ones it reads
    processor._direct = direct  # as with an SDK release whose batch processor it does not know
    emitted: list[str] = []
    emit = processor._batch_processor.emit

    def counted(span: Any) -> None:
        emitted.append(span.name)
        emit(span)

    monkeypatch.setattr(processor._batch_processor, "emit", counted)
    light = LightTracerProvider(resource=RESOURCE, processor=processor, shutdown_on_exit=False)
    light.get_tracer("isthmus").start_span("one").end()
    assert light.force_flush()
    assert [span.name for span in exporter.get_finished_spans()] == ["one"]
    assert emitted == ([] if direct else ["one"])
    light.shutdown()


class HeldExporter(InMemorySpanExporter):
    """Holds its first export until released: the batch processor's queue fills meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.exporting, self.release = threading.Event(), threading.Event()

    def export(self, spans: Any) -> Any:
        self.exporting.set()
        assert self.release.wait(10)
        return super().export(spans)


def test_a_light_span_ended_on_a_full_queue_is_handed_to_the_sdk_which_drops_the_oldest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = HeldExporter()
    processor = LightBatchSpanProcessor(exporter, max_queue_size=2, max_export_batch_size=2)
    light = LightTracerProvider(resource=RESOURCE, processor=processor, shutdown_on_exit=False)
    tracer = light.get_tracer("isthmus")
    assert tracer.batching is processor._batch_processor  # ended spans are queued by `LightSpan.end` itself
    for name in ("a", "b"):
        tracer.start_span(name).end()  # a batch: the worker takes both and is held exporting them
    assert exporter.exporting.wait(10)
    with caplog.at_level(logging.WARNING):
        for name in ("c", "d", "e"):  # the queue holds two: "e" finds it full, and the SDK drops "c" for it
            tracer.start_span(name).end()
    assert "Queue full" in caplog.text
    exporter.release.set()
    assert light.force_flush()
    assert [span.name for span in exporter.get_finished_spans()] == ["a", "b", "d", "e"]
    light.shutdown()
