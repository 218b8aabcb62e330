"""Metrics.observe: each label set counts its own requests, however often it recurs."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from toolpolicy.audit import AuditRecord
from toolpolicy.settings import GatewaySettings
from toolpolicy.telemetry import metrics as metrics_module
from toolpolicy.telemetry.labels import RouteLabels
from toolpolicy.telemetry.metrics import Metrics


def record(status: int, route: str, *, tokens_out: int = 8, reason: str | None = None) -> AuditRecord:
    return AuditRecord(
        request_id="r",
        kind="llm",
        target=route,
        decision="deny" if reason else "allow",
        status=status,
        latency_ms=2.0,
        reason=reason,
        tokens_in=12,
        tokens_out=tokens_out,
        cost_usd=Decimal("0.5"),
        details={"route": route, "ttfb_ms": 1.0},
    )


def test_label_sets_are_counted_apart_across_many_requests() -> None:
    settings = GatewaySettings.model_validate(
        {"providers": {"openai": {"kind": "openai", "models": ["gpt-a", "gpt-b"]}}}
    )
    metrics = Metrics(RouteLabels(settings))
    for _ in range(3):
        metrics.observe(record(200, "openai/gpt-a"))
    metrics.observe(record(200, "openai/gpt-b", tokens_out=5))
    metrics.observe(record(429, "openai/gpt-a", reason="rate_limited"))
    value = metrics.registry.get_sample_value
    assert value("isthmus_requests_total", {"kind": "llm", "route": "openai/gpt-a", "status": "200"}) == 3
    assert value("isthmus_requests_total", {"kind": "llm", "route": "openai/gpt-b", "status": "200"}) == 1
    assert value("isthmus_requests_total", {"kind": "llm", "route": "openai/gpt-a", "status": "429"}) == 1
    assert value("isthmus_denials_total", {"kind": "llm", "reason": "rate_limited"}) == 1
    assert value("isthmus_tokens_total", {"route": "openai/gpt-a", "direction": "output"}) == 32
    assert value("isthmus_tokens_total", {"route": "openai/gpt-b", "direction": "output"}) == 5
    assert value("isthmus_time_to_first_byte_seconds_count", {"route": "openai/gpt-b"}) == 1
    assert value("isthmus_request_duration_seconds_count", {"kind": "llm"}) == 5
    assert value("isthmus_cost_usd_total", {"kind": "llm", "route": "openai/gpt-a"}) == 2.0


def test_each_recorded_route_keeps_its_label_and_counts_past_the_remembered_routes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Labels found for a route are remembered per (kind, route, status): a made-up model keeps counting under
    `<provider>/other`, a known one under its name, whether remembered or not (here past a bound of two)."""
    monkeypatch.setattr(metrics_module, "MAX_REMEMBERED_ROUTES", 2)
    settings = GatewaySettings.model_validate({"providers": {"openai": {"kind": "openai", "models": ["gpt-a"]}}})
    metrics = Metrics(RouteLabels(settings))
    routes = ["openai/gpt-a", "openai/made-up", "elsewhere/x", "openai/made-up-too"]
    for _ in range(3):
        for route in routes:
            metrics.observe(record(200, route))
        metrics.observe(record(429, "openai/gpt-a", reason="rate_limited"))
    value = metrics.registry.get_sample_value
    assert value("isthmus_requests_total", {"kind": "llm", "route": "openai/gpt-a", "status": "200"}) == 3
    assert value("isthmus_requests_total", {"kind": "llm", "route": "openai/gpt-a", "status": "429"}) == 3
    assert value("isthmus_requests_total", {"kind": "llm", "route": "openai/other", "status": "200"}) == 6
    assert value("isthmus_requests_total", {"kind": "llm", "route": "other", "status": "200"}) == 3
    assert value("isthmus_request_duration_seconds_count", {"kind": "llm"}) == 15
    assert value("isthmus_time_to_first_byte_seconds_count", {"route": "openai/other"}) == 6
    assert value("isthmus_denials_total", {"kind": "llm", "reason": "rate_limited"}) == 3


def observed_before(metrics: Metrics, record: AuditRecord) -> None:
    """`Metrics.observe` for a request's record as it was written before it kept each label set's series together:
    one `inc` or `observe` per series, each finding its own (the reference the kept series must agree with)."""
    details = record.details
    kind = record.kind
    route = metrics.labels.route(kind, details.get("route"))
    seconds = record.latency_ms / 1000
    upstream_ms, ttfb_ms = details.get("upstream_ms"), details.get("ttfb_ms")
    with metrics.per_request.lock:
        metrics.requests.inc((kind, route, str(record.status)))
        if record.decision == "deny" and record.reason:
            metrics.denials.inc((kind, record.reason))
        metrics.duration.observe((kind,), seconds)
        if isinstance(upstream_ms, int | float):
            metrics.upstream.observe((kind,), upstream_ms / 1000)
            overhead = seconds - upstream_ms / 1000
            metrics.overhead.observe((kind,), overhead if overhead > 0.0 else 0.0)
        if isinstance(ttfb_ms, int | float):
            metrics.ttfb.observe((route,), ttfb_ms / 1000)
        if record.tokens_in:
            metrics.tokens.inc((route, "input"), record.tokens_in)
        if record.tokens_out:
            metrics.tokens.inc((route, "output"), record.tokens_out)
        if record.cost_usd and record.cost_usd > 0:
            metrics.cost.inc((kind, route), float(record.cost_usd))


def exposed(metrics: Metrics) -> list[tuple[str, dict[str, str], str]]:
    """The per-request series' samples in order, without their creation times (the clock's, not the records'); each
    value as its repr (a NaN latency makes a NaN sum, equal to no other)."""
    return [
        (sample.name, sample.labels, repr(sample.value))
        for family in metrics.per_request.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


durations = st.floats(min_value=0, max_value=10**6) | st.sampled_from([math.nan, -0.0, 0.5, 2500.0])
request_records = st.builds(
    AuditRecord,
    request_id=st.just("r"),
    kind=st.sampled_from(["llm", "tool_call", "authorize"]),
    target=st.just("t"),
    decision=st.sampled_from(["allow", "deny"]),
    status=st.sampled_from([200, 429, 502]),
    latency_ms=durations,
    reason=st.none() | st.sampled_from(["rate_limited", "budget"]),
    tokens_in=st.none() | st.integers(0, 10**6),
    tokens_out=st.none() | st.integers(0, 10**6),
    cost_usd=st.none() | st.decimals(min_value=-1, max_value=10, places=7),
    details=st.fixed_dictionaries(
        {"route": st.sampled_from(["openai/gpt-a", "openai/made-up", "docs/search", None])},
        optional={"upstream_ms": durations | st.integers(0, 10**4), "ttfb_ms": durations, "cache": st.just("miss")},
    ),
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(records=st.lists(request_records, max_size=30), remembered=st.integers(0, 3))
def test_observe_exposes_what_one_update_per_series_exposed(records: list[AuditRecord], remembered: int) -> None:
    settings = GatewaySettings.model_validate(
        {"providers": {"openai": {"kind": "openai", "models": ["gpt-a"]}}, "mcp_servers": {}}
    )
    kept, reference = Metrics(RouteLabels(settings)), Metrics(RouteLabels(settings))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics_module, "MAX_REMEMBERED_ROUTES", remembered)  # past the bound too
        for record in records:
            kept.observe(record)
            observed_before(reference, record)
    assert exposed(kept) == exposed(reference)


def test_a_negative_token_count_is_refused_as_the_counter_refuses_it() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="non-negative"):
        metrics.observe(record(200, "openai/gpt-a", tokens_out=-1))
