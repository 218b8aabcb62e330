"""Spans when no tracer provider is installed: the request paths make none and read nothing for them."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import baggage, context as otel_context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY

from tests.tracing_support import span_exporter
from toolpolicy.telemetry import tracing
from toolpolicy.telemetry.tracing import (
    add_attributes,
    child_span,
    inject,
    nothing_to_trace,
    operation_span,
    span_under,
    start_server_span,
    tracing_on,
)


class Untouchable(Mapping[str, str]):
    """Headers that fail the test when anything reads them."""

    def __getitem__(self, key: str) -> str:
        raise AssertionError(f"read {key!r}")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("iterated")

    def __len__(self) -> int:
        return 1


@pytest.fixture
def no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)


def test_without_a_provider_the_server_span_is_the_no_op_one_and_headers_are_not_read(no_provider: None) -> None:
    assert not tracing_on()
    span = start_server_span("chat", Untouchable(), {"gen_ai.operation.name": "chat"})
    assert span is INVALID_SPAN and not span.is_recording()
    span.end()


def test_without_a_provider_an_attempt_span_changes_nothing_upstream_calls_carry(no_provider: None) -> None:
    before = trace.get_current_span()
    with span_under(INVALID_SPAN, "chat gpt", {"isthmus.attempt": 1}) as attempt:
        assert attempt is INVALID_SPAN
        assert trace.get_current_span() is before
        carrier: dict[str, str] = {}
        inject(carrier)
        assert "traceparent" not in carrier


@pytest.mark.parametrize("span", [operation_span, child_span])
def test_without_a_provider_or_a_trace_to_continue_a_span_is_skipped(no_provider: None, span: Any) -> None:
    assert nothing_to_trace()
    before = otel_context.get_current()
    with span("tools/call t", {"gen_ai.tool.name": "t"}) as made:
        assert made is INVALID_SPAN
        assert otel_context.get_current() is before
        carrier: dict[str, str] = {}
        inject(carrier)
        assert carrier == {}


@pytest.mark.parametrize("span", [operation_span, child_span])
def test_without_a_provider_a_continued_trace_still_reaches_upstream_calls(no_provider: None, span: Any) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    token = otel_context.attach(propagate.extract({"traceparent": traceparent}))
    try:
        assert not nothing_to_trace()
        with span("tools/call t", {"gen_ai.tool.name": "t"}) as made:
            assert made is not INVALID_SPAN
            carrier: dict[str, str] = {}
            inject(carrier)
    finally:
        otel_context.detach(token)
    assert carrier["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"


def test_with_a_provider_attempt_spans_are_recorded_under_the_request_and_propagated() -> None:
    exporter = span_exporter()
    exporter.clear()
    assert tracing_on()
    caller = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    request = start_server_span("chat", caller, {"isthmus.request_id": "r1"})
    with span_under(request, "chat gpt", {"isthmus.attempt": 1}) as attempt:
        assert attempt.is_recording()
        carrier: dict[str, str] = {}
        inject(carrier)
    request.end()
    assert carrier["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert spans["chat gpt"].parent is not None
    assert spans["chat gpt"].parent.span_id == spans["chat"].context.span_id


def test_attributes_without_a_value_are_left_out_and_the_callers_mapping_is_not_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = span_exporter()
    exporter.clear()
    given: dict[str, Any] = {"isthmus.attempt": 1, "isthmus.team": None, "gen_ai.request.model": "gpt"}
    plain: dict[str, Any] = {"isthmus.request_id": "r2"}
    request = start_server_span("chat", {}, plain)
    with span_under(request, "chat gpt", given), operation_span("inner", {}):
        given["late"] = plain["late"] = "changed after the span started"
    request.end()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert dict(spans["chat gpt"].attributes or {}) == {"isthmus.attempt": 1, "gen_ai.request.model": "gpt"}
    assert dict(spans["chat"].attributes or {}) == {"isthmus.request_id": "r2"}
    assert dict(spans["inner"].attributes or {}) == {}
    assert "Invalid type" not in caplog.text  # the SDK's warning for a None value: none was passed on


def test_an_attempt_span_is_under_the_given_span_and_the_current_context_stays_around_it() -> None:
    exporter = span_exporter()
    exporter.clear()
    request = start_server_span("chat", {})
    elsewhere = start_server_span("other", {})
    outer = otel_context.attach(trace.set_span_in_context(elsewhere, baggage.set_baggage("tenant", "acme")))
    try:
        with span_under(request, "chat gpt") as attempt:
            assert trace.get_current_span() is attempt
            assert baggage.get_baggage("tenant") == "acme"  # the caller's context, with the attempt span in it
        assert trace.get_current_span() is elsewhere
    finally:
        otel_context.detach(outer)
    request.end()
    elsewhere.end()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    parent = spans["chat gpt"].parent
    assert parent is not None and parent.span_id == spans["chat"].context.span_id


def test_an_attribute_value_equal_to_none_but_not_none_is_kept() -> None:
    class EqualToEverything(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    exporter = span_exporter()
    exporter.clear()
    odd = EqualToEverything("odd")
    request = start_server_span("chat", {}, {"odd": odd, "gone": None})
    request.end()
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {"odd": "odd"}


def test_inject_writes_what_the_configured_propagators_write() -> None:
    span_exporter()
    caller = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "vendor=x1,other=y",
    }
    request = start_server_span("chat", caller)
    with span_under(request, "chat gpt"):
        carrier: dict[str, str] = {}
        inject(carrier)
        expected: dict[str, str] = {}
        propagate.inject(expected)
        # With baggage set, the baggage propagator adds its header too.
        token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            with_baggage: dict[str, str] = {}
            inject(with_baggage)
        finally:
            otel_context.detach(token)
    request.end()
    assert carrier == expected
    assert carrier["tracestate"] == "vendor=x1,other=y" and carrier["traceparent"].endswith("-01")
    assert with_baggage["baggage"] == "tenant=acme" and with_baggage["traceparent"] == carrier["traceparent"]


@pytest.mark.parametrize(
    ("current", "sent"),
    [
        (None, False),
        (INVALID_SPAN, False),
        (
            NonRecordingSpan(SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(1))),
            True,
        ),
        ("not a span", False),
    ],
)
def test_inject_writes_what_the_propagators_write_whatever_is_current(current: Any, sent: bool) -> None:
    context = otel_context.get_current() if current is None else otel_context.set_value(_SPAN_KEY, current)
    carrier, expected = injected_in(context)
    assert carrier == expected
    assert bool(carrier) == sent


def injected_in(context: otel_context.Context) -> tuple[dict[str, str], dict[str, str]]:
    """What `inject` writes with `context` current, and what the configured propagators write."""
    token = otel_context.attach(context)
    try:
        carrier: dict[str, str] = {}
        inject(carrier)
        expected: dict[str, str] = {}
        propagate.inject(expected)
    finally:
        otel_context.detach(token)
    return carrier, expected


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("with_baggage", [False, True])
def test_inject_reads_the_current_context_and_its_baggage_as_the_api_does(
    monkeypatch: pytest.MonkeyPatch, direct: bool, with_baggage: bool
) -> None:
    assert tracing.DIRECT  # this API keeps the current context where inject reads it directly
    monkeypatch.setattr(tracing, "DIRECT", direct)  # as with an API whose internals it does not know
    span_exporter()
    request = start_server_span("chat", {})
    with span_under(request, "chat gpt"):
        current = otel_context.get_current()
        carrier, expected = injected_in(baggage.set_baggage("tenant", "acme") if with_baggage else current)
    request.end()
    assert carrier == expected
    assert ("baggage" in carrier) == with_baggage and "traceparent" in carrier


def test_inject_uses_a_configured_propagator_other_than_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    span_exporter()
    monkeypatch.setattr(propagate, "get_global_textmap", lambda: CompositePropagator([W3CBaggagePropagator()]))
    request = start_server_span("chat", None)
    with span_under(request, "chat gpt"):
        carrier: dict[str, str] = {}
        inject(carrier)
    request.end()
    assert carrier == {}


def test_without_a_provider_telling_tracing_is_off_reads_no_environment(
    no_provider: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Watched(dict[str, str]):
        def __contains__(self, key: object) -> bool:
            raise AssertionError(f"read {key!r}")

        def __getitem__(self, key: str) -> str:
            raise AssertionError(f"read {key!r}")

        def get(self, key: str, default: Any = None) -> Any:
            raise AssertionError(f"read {key!r}")

    monkeypatch.setattr(os, "environ", Watched(os.environ))
    assert not tracing_on()
    assert nothing_to_trace()


def test_a_helpers_span_is_one_light_span_current_in_its_block_and_ended_after_it() -> None:
    exporter = span_exporter()
    exporter.clear()
    request = start_server_span("chat", {}, {"isthmus.request_id": "r3"})
    assert request.is_recording() and request.parent is None  # type: ignore[attr-defined]
    before = otel_context.get_current()
    with pytest.raises(ValueError), span_under(request, "chat gpt", {"isthmus.attempt": 1}) as attempt:
        assert trace.get_current_span() is attempt and attempt.is_recording()
        with operation_span("inner", {"n": 2}) as inner:
            assert trace.get_current_span() is inner
        assert trace.get_current_span() is attempt
        raise ValueError("upstream refused")
    assert otel_context.get_current() is before and not attempt.is_recording()
    add_attributes(request, {"http.response.status_code": 502})
    request.end()
    add_attributes(request, {"late": 1})  # an ended span takes none, as `set_attributes`
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert spans["inner"].parent is not None and spans["inner"].parent.span_id == attempt.get_span_context().span_id
    assert spans["chat gpt"].status.status_code is trace.StatusCode.ERROR
    assert [event.name for event in spans["chat gpt"].events] == ["exception"]
    assert dict(spans["chat"].attributes or {}) == {"isthmus.request_id": "r3", "http.response.status_code": 502}


def test_inject_writes_a_light_spans_traceparent_as_the_propagators_do() -> None:
    span_exporter()
    request = start_server_span("chat", {})
    for flags in (0x01, 0x03):
        context = request.get_span_context()
        request.context = SpanContext(  # type: ignore[attr-defined]
            0x00F7651916CD43DD8448EB211C80319C, 0x07AD6B7169203331, False, TraceFlags(flags)
        )
        with span_under(request, "chat gpt") as attempt:
            carrier: dict[str, str] = {}
            inject(carrier)
            expected: dict[str, str] = {}
            propagate.inject(expected)
        assert carrier == expected
        assert (
            carrier["traceparent"]
            == f"00-00f7651916cd43dd8448eb211c80319c-{attempt.get_span_context().span_id:016x}-{flags:02x}"
        )
        request.context = context  # type: ignore[attr-defined]
    request.end()
