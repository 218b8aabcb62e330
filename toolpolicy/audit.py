"""Audit records: one per request a decision touched, written off the hot path in batches."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from toolpolicy.batching import BatchWriter


# Not `frozen`: a frozen dataclass sets each field through `object.__setattr__`, five times the cost of a plain one,
# and a record is built for every request. Treat it as immutable all the same: consumers share one record (the audit
# writer, the rollups, the metrics, the log line), and `sanitize` makes a new one with `replace` to change a field.
# (Hashing is unchanged: `details` is a dict, so a record never was hashable.)
@dataclass(slots=True)
class AuditRecord:
    request_id: str
    kind: str
    """`authorize`, `llm`, `tool_call`, ..."""
    target: str
    decision: str
    """`allow` or `deny`."""
    status: int
    latency_ms: float
    key_id: str | None = None
    key_name: str | None = None
    team: str | None = None
    customer: str | None = None
    reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: Decimal | None = None
    details: dict[str, Any] = field(default_factory=dict)
    ts: datetime = field(default_factory=partial(datetime.now, UTC))

    def as_row(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies `details` for every record, on every request.
        return {name: getattr(self, name) for name in _FIELDS}


AuditWriter = BatchWriter[AuditRecord]


_FIELDS = tuple(item.name for item in fields(AuditRecord))
