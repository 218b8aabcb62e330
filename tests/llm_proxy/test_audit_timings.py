"""A request's audit record gives its latency and its time to first byte in milliseconds, to three places."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from llm_proxy.pipeline import Exchange, Pipeline
from toolpolicy.audit import AuditRecord
from toolpolicy.errors import InvalidRequest


def finished(started: float, ended: float, ttfb: float | None) -> AuditRecord:
    records: list[AuditRecord] = []
    governance: Any = SimpleNamespace(audit=SimpleNamespace(emit=records.append))
    pipeline = Pipeline(governance, router=None)  # type: ignore[arg-type]  # routing plays no part in the record
    exchange = Exchange("r1", "openai", "chat")
    exchange.started, exchange.ended, exchange.ttfb = started, ended, ttfb
    pipeline.fail(exchange, InvalidRequest("'model' is required"), 400)  # a record without a key: a refusal
    pipeline.finish(exchange)
    (record,) = records
    return record


@pytest.mark.parametrize(
    ("seconds", "milliseconds"),
    [(0.0123456789, 12.346), (0.0004999, 0.5), (0.0125, 12.5), (2.0, 2000.0), (0.0, 0.0), (0.00000049, 0.0)],
)
def test_latency_and_first_byte_are_milliseconds_to_three_places(seconds: float, milliseconds: float) -> None:
    record = finished(100.0, 100.0 + seconds, seconds)
    assert record.latency_ms == pytest.approx(milliseconds, abs=1e-9)  # `100.0 + seconds` loses a few bits
    assert record.details["ttfb_ms"] == milliseconds == round(seconds * 1000, 3)
    assert type(record.latency_ms) is float and type(record.details["ttfb_ms"]) is float


def test_a_record_without_a_first_byte_has_no_ttfb() -> None:
    assert "ttfb_ms" not in finished(5.0, 5.25, None).details
