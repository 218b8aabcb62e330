"""Metrics.observe: each label set counts its own requests, however often it recurs."""

from __future__ import annotations

from decimal import Decimal

import pytest

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
