"""Audit records to fold, with defaults a test overrides."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from toolpolicy.audit import AuditRecord

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def record(**fields: Any) -> AuditRecord:
    """An allowed LLM request of key `bot` at T0 (10:00 UTC), 5 ms, unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "request_id": "r",
        "kind": "llm",
        "target": "echo/echo-1",
        "decision": "allow",
        "status": 200,
        "latency_ms": 5.0,
        "key_name": "bot",
        "ts": T0,
    }
    values.update(fields)
    return AuditRecord(**values)
