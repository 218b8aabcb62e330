"""The direct OTLP encoder: the request it writes decodes to the message the OTLP library's encoder builds."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings, strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from toolpolicy.telemetry.otlp_export import FastOTLPSpanExporter, encode_request


def _spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "isthmus-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("isthmus")
    other = provider.get_tracer("mcp", "2.0", schema_url="https://opentelemetry.io/schemas/1.30.0")
    remote = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "x1"), ("other", "y")]),
    )
    attributes = {
        "gen_ai.operation.name": "chat",
        "isthmus.attempt": 3,
        "negative": -7,
        "large": (1 << 63) - 1,
        "flag": True,
        "off": False,
        "ratio": 0.25,
        "unicode": "héllo ✓" * 30,
    }
    server = tracer.start_span("chat gpt-x", set_span_in_context(NonRecordingSpan(remote)), SpanKind.SERVER, attributes)
    with tracer.start_as_current_span("chat gpt", set_span_in_context(server), SpanKind.CLIENT) as attempt:
        attempt.set_status(Status(StatusCode.ERROR, "upstream said no"))
    server.set_status(Status(StatusCode.OK))
    server.end()
    with tracer.start_as_current_span("with a list", attributes={"models": ["a", "b"], "one": 1}):
        pass
    with tracer.start_as_current_span("with an event") as span:
        span.add_event("retry", {"attempt": 2})
    with other.start_as_current_span("tools/call add", kind=SpanKind.INTERNAL, attributes={"mcp.method.name": "x"}):
        pass
    with tracer.start_as_current_span("error without message") as span:
        span.set_status(Status(StatusCode.ERROR))
    spans = list(exporter.get_finished_spans())
    # A span of another provider between them: grouped with its equal resource, in the order of the batch.
    again = TracerProvider(resource=Resource.create({"service.name": "isthmus-test"}))
    again.add_span_processor(SimpleSpanProcessor(exporter))
    with again.get_tracer("isthmus").start_as_current_span("from another provider"):
        pass
    return [*spans[:2], exporter.get_finished_spans()[-1], *spans[2:]]


def test_the_request_decodes_to_the_librarys_message() -> None:
    spans = _spans()
    assert len(spans) == 7
    expected = encode_spans(spans)
    # Twice: the second time every attribute comes from the cache of encoded ones.
    for _ in range(2):
        assert ExportTraceServiceRequest.FromString(encode_request(spans)) == expected


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_request([]) == b""
    assert ExportTraceServiceRequest.FromString(b"") == encode_spans([])


class _Sink(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.path, self.headers["x-tenant"], body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_exporter_posts_the_request_to_the_collector() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        exporter = FastOTLPSpanExporter(endpoint=endpoint, headers={"x-tenant": "t1"})
        spans = _spans()
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    [(path, tenant, body)] = _Sink.received
    assert path == "/v1/traces" and tenant == "t1"
    assert ExportTraceServiceRequest.FromString(body) == encode_spans(spans)


def test_string_attributes_around_the_one_byte_length_limit_decode_alike() -> None:
    # Short strings are written in one step with one-byte lengths; longer ones (or multi-byte text that encodes
    # longer than it counts) take the general path. Each side of that limit decodes to the library's message.
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "isthmus-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("isthmus")
    for length in range(110, 130):
        attributes = {"k": "v" * length, "key" * 20: "é" * (length // 2), f"fresh.{length}": "✓" * (130 - length)}
        with tracer.start_as_current_span(f"span {length}", attributes=attributes):
            pass
    spans = exporter.get_finished_spans()
    assert ExportTraceServiceRequest.FromString(encode_request(spans)) == encode_spans(spans)


def test_light_spans_with_equal_values_of_other_types_encode_each_type() -> None:
    """The encoder's cache of attributes (looked up per mapping, in C) keeps 1, True, 1.0 and "1" apart, whether
    they come in a mapping or one by one, and a value seen once more is encoded alike."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor as Simple

    from toolpolicy.telemetry.light_spans import LightTracerProvider

    exporter = InMemorySpanExporter()
    provider = LightTracerProvider(
        resource=Resource.create({"service.name": "isthmus-test"}), processor=Simple(exporter), shutdown_on_exit=False
    )
    tracer = provider.get_tracer("isthmus")
    values: list[Any] = [1, True, 1.0, "1", 0, False, 0.0, "", 1, "1", True]
    for index, value in enumerate(values):
        with tracer.start_as_current_span("by mapping", attributes={"v": value, "n": index}) as span:
            span.set_attribute("single", value)
            span.set_attributes({"later": value})
    spans: list[Any] = list(exporter.get_finished_spans())
    expected = encode_spans([span.readable() for span in spans])
    for _ in range(2):  # the second time every attribute comes from the cache
        assert ExportTraceServiceRequest.FromString(encode_request(spans)) == expected


def test_a_zero_keeps_its_sign_whichever_zero_came_first() -> None:
    """0.0 and -0.0 are equal (and hash alike) as the cache's keys, but not as the bytes of a double: each span's
    attribute decodes to the zero it set. (Decoded messages compare them equal, so the sign is checked itself.)"""
    import math

    from opentelemetry.sdk.trace.export import SimpleSpanProcessor as Simple

    from toolpolicy.telemetry.light_spans import LightTracerProvider

    exporter = InMemorySpanExporter()
    provider = LightTracerProvider(
        resource=Resource.create({"service.name": "isthmus-test"}), processor=Simple(exporter), shutdown_on_exit=False
    )
    tracer = provider.get_tracer("isthmus")
    zeros = [0.0, -0.0, -0.0, 0.0, -0.0]
    for zero in zeros:
        with tracer.start_as_current_span("zero", attributes={"z": zero}) as span:
            span.set_attribute("single", zero)
    spans: list[Any] = list(exporter.get_finished_spans())
    for _ in range(2):  # the second time any zero the cache kept would be found there
        request = ExportTraceServiceRequest.FromString(encode_request(spans))
        sent = [span for scope in request.resource_spans[0].scope_spans for span in scope.spans]
        assert len(sent) == len(zeros)
        for span, zero in zip(sent, zeros, strict=True):
            for attribute in span.attributes:
                assert math.copysign(1.0, attribute.value.double_value) == math.copysign(1.0, zero), attribute.key


def test_light_spans_set_twice_or_with_values_left_to_the_sdk_decode_to_the_librarys_message() -> None:
    """A request span's two mappings (its start's and its end's) are encoded in one pass, a key set in both kept
    once with its last value; a value the direct encoder leaves to the SDK's rules (beyond int64, a list), new or
    seen before, in either mapping or set alone, sends the span through the SDK's `ReadableSpan` instead."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor as Simple

    from toolpolicy.telemetry.light_spans import LightTracerProvider

    exporter = InMemorySpanExporter()
    provider = LightTracerProvider(
        resource=Resource.create({"service.name": "isthmus-test"}), processor=Simple(exporter), shutdown_on_exit=False
    )
    tracer = provider.get_tracer("isthmus")
    later: list[dict[str, Any]] = [
        {"gen_ai.response.model": "gpt-x", "http.response.status_code": 200},
        {"isthmus.request_id": "again", "gen_ai.operation.name": "embeddings"},
        {"huge": 1 << 64, "n": 1},
        {"models": ["a", "b"], "n": 2},
    ]
    for _ in range(2):  # the second time every plain attribute comes from the cache
        for index, end in enumerate(later):
            span = tracer.start_span("chat", attributes={"gen_ai.operation.name": "chat", "isthmus.request_id": index})
            span.set_attributes(end)
            span.end()
        with tracer.start_as_current_span("single", attributes={"n": 3}) as single:
            single.set_attribute("huge", -(1 << 64))
        with tracer.start_as_current_span("at its start only", attributes={"n": 4, "isthmus.request_id": "r"}):
            pass
    spans: list[Any] = list(exporter.get_finished_spans())
    assert [len(span.entries) for span in spans] == [2, 2, 2, 2, 2, 1] * 2
    expected = encode_spans([span.readable() for span in spans])
    assert ExportTraceServiceRequest.FromString(encode_request(spans)) == expected


def test_light_spans_of_every_shape_are_the_bytes_of_their_readable_spans() -> None:
    """A batch of light spans (one mapping, a request span's two, two with a key in both, single attributes, a
    value left to the SDK's rules, an event) is sent byte for byte as the same spans made the SDK's `ReadableSpan`
    first, which the encoder writes attribute by attribute; with a span limit that some spans exceed, too."""
    from opentelemetry.sdk.trace import SpanLimits
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor as Simple

    from toolpolicy.telemetry.light_spans import LightTracerProvider

    exporter = InMemorySpanExporter()
    provider = LightTracerProvider(
        resource=Resource.create({"service.name": "isthmus-test"}), processor=Simple(exporter), shutdown_on_exit=False
    )
    tracer = provider.get_tracer("isthmus")
    for index in range(60):
        start = {"gen_ai.operation.name": "chat", "isthmus.request_id": f"req-{index}"}
        span = tracer.start_span("chat", attributes=start, kind=SpanKind.SERVER)
        with tracer.start_as_current_span("attempt", set_span_in_context(span), SpanKind.CLIENT, {"n": index % 3}):
            pass
        end: dict[str, Any] = {"gen_ai.usage.input_tokens": index, "isthmus.cost_usd": index / 7, "ok": index % 2 == 0}
        if index % 4 == 1:
            end["gen_ai.operation.name"] = "embeddings"  # set again: kept once, last
        if index % 9 == 2:
            end["models"] = ["a", "b"]
        span.set_attributes(end)
        if index % 5 == 3:
            span.set_attribute("single", index)
        if index % 11 == 4:
            span.add_event("retry", {"attempt": 2})
        span.end()
    spans: list[Any] = list(exporter.get_finished_spans())
    for limit in (None, 4):
        provider.limits = SpanLimits(max_span_attributes=limit)
        for _ in range(2):  # the second time every plain attribute comes from the cache
            assert encode_request(spans) == encode_request([span.readable() for span in spans])


_KNOWN_KEYS = ("isthmus.request_id", "isthmus.cost_usd", "k" * 100, "k" * 120, "é")


@settings(max_examples=400, deadline=None)
@given(
    key=st.sampled_from(_KNOWN_KEYS) | st.text(max_size=130),
    value=st.text(max_size=130)
    | st.floats(allow_nan=True)
    | st.sampled_from([0.0, -0.0])
    | st.integers(min_value=-(1 << 64), max_value=1 << 64)
    | st.booleans(),
)
def test_an_attribute_encoded_on_a_miss_is_what_the_general_encoder_writes(key: str, value: Any) -> None:
    """`__missing__` writes a new short text and a float zero itself (no further call); whatever it writes is the
    field `_new_key_value` writes for the same attribute, and what it leaves to the SDK's rules it still raises on."""
    from toolpolicy.telemetry import otlp_export

    for known in _KNOWN_KEYS:
        otlp_export._new_key_value(known, "seen")  # keys seen before, as the fast paths need
    looked_up = (key, value, type(value))
    otlp_export._KEY_VALUES.pop(looked_up, None)  # a miss, whatever ran before
    expected = otlp_export._new_key_value(key, value)
    otlp_export._KEY_VALUES.pop(looked_up, None)
    if expected is None:
        with pytest.raises(TypeError):
            otlp_export._KEY_VALUES[looked_up]
    else:
        assert otlp_export._KEY_VALUES[looked_up] == expected
        assert otlp_export._KEY_VALUES[looked_up] == expected  # and found again alike (a zero: written again)


def test_a_key_that_is_a_text_subclass_is_left_to_the_sdks_rules_on_a_miss() -> None:
    from toolpolicy.telemetry import otlp_export

    class Key(str):
        pass

    otlp_export._new_key_value("isthmus.request_id", "seen")
    for value in ("new-id", -0.0):
        with pytest.raises(TypeError):
            otlp_export._KEY_VALUES[Key("isthmus.request_id"), value, type(value)]


def test_new_texts_of_a_length_seen_before_are_each_sent_as_set() -> None:
    """A new text under a key seen before with a text of the same length in bytes (a request id) is written from
    that key's kept head: each span's attribute still decodes to its own text, multi-byte ones too."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor as Simple

    from toolpolicy.telemetry.light_spans import LightTracerProvider

    exporter = InMemorySpanExporter()
    provider = LightTracerProvider(
        resource=Resource.create({"service.name": "isthmus-test"}), processor=Simple(exporter), shutdown_on_exit=False
    )
    tracer = provider.get_tracer("isthmus")
    ids = ["a" * 32, "b" * 32, "é" * 16, "c" * 31 + "d", "é" * 15 + "xy", "short"]  # 32 bytes each but the last
    for request_id in ids:
        with tracer.start_as_current_span("chat", attributes={"isthmus.request_id": request_id, "n": 1}):
            pass
    spans: list[Any] = list(exporter.get_finished_spans())
    request = ExportTraceServiceRequest.FromString(encode_request(spans))
    assert request == encode_spans([span.readable() for span in spans])
    sent = [span for scope in request.resource_spans[0].scope_spans for span in scope.spans]
    assert [span.attributes[0].value.string_value for span in sent] == ids
