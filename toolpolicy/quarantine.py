"""The escaped form a writer stores in place of a record the store rejected.

Normalising at the edge (`toolpolicy.sanitize`) keeps rejections rare; this is the second line. The quarantined form
is plain printable ASCII (anything else as a Python escape, e.g. `\\ud800`, `\\x00`), cut to its columns, so any
store takes it. An audit record keeps its place in the chain and its emission number, is marked `kind=quarantined`
and carries the escaped original in `details.quarantine`; a spend entry keeps what budgets count (cost, key, team,
customer, time), so the money is never lost with the bad string.
"""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from toolpolicy import sanitize
from toolpolicy.audit import AuditRecord
from toolpolicy.batching import first_line
from toolpolicy.store.ledger import MAX_COST, SpendEntry

QUARANTINED_KIND = "quarantined"
MAX_ESCAPED_RECORD = 16_000
"""Characters kept of the escaped original record."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def escape(value: object, limit: int) -> str:
    """`value` (its repr when not a string) as printable ASCII, cut to `limit` characters."""
    try:
        raw = value if isinstance(value, str) else repr(value)
    except Exception:
        raw = f"<unrepresentable {type(value).__name__}>"
    escaped = raw.encode("ascii", "backslashreplace").decode("ascii")
    escaped = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", escaped)
    return sanitize.text(escaped, limit)


def _optional(value: object, limit: int) -> str | None:
    return None if value is None else escape(value, limit)


def _number(value: object, convert: Any, default: Any) -> Any:
    try:
        return convert(value)
    except Exception:
        return default


def _when(value: object) -> datetime:
    if isinstance(value, datetime):
        return sanitize.aware(value)
    return datetime.now(UTC)


def audit_record(record: AuditRecord, error: BaseException) -> AuditRecord:
    lengths = sanitize.AUDIT_LENGTHS
    original = {item.name: getattr(record, item.name) for item in fields(record)}
    return AuditRecord(
        request_id=escape(record.request_id, lengths["request_id"]),
        kind=QUARANTINED_KIND,
        target=escape(record.target, lengths["target"]),
        decision=record.decision if record.decision in ("allow", "deny") else "unknown",
        status=_number(record.status, sanitize.int32, 0),
        latency_ms=_number(record.latency_ms, sanitize.finite, 0.0),
        key_id=_optional(record.key_id, lengths["key_id"]),
        key_name=_optional(record.key_name, lengths["key_name"]),
        team=_optional(record.team, lengths["team"]),
        customer=_optional(record.customer, lengths["customer"]),
        reason=_optional(record.reason, lengths["reason"]),
        tokens_in=_number(record.tokens_in, sanitize.count, None),
        tokens_out=_number(record.tokens_out, sanitize.count, None),
        cost_usd=_number(record.cost_usd, sanitize.cost, None),
        details={
            "quarantine": {
                "kind": escape(record.kind, 64),
                "error": escape(first_line(error), 1024),
                "record": escape(original, MAX_ESCAPED_RECORD),
            }
        },
        ts=_when(record.ts),
    )


def spend_entry(entry: SpendEntry, error: BaseException) -> SpendEntry:
    lengths = sanitize.SPEND_LENGTHS
    return SpendEntry(
        request_id=escape(entry.request_id, lengths["request_id"]),
        target=escape(entry.target, lengths["target"]),
        cost_usd=_number(entry.cost_usd, lambda value: sanitize.cost(value, MAX_COST), None) or Decimal(0),
        key_id=_optional(entry.key_id, lengths["key_id"]),
        team_id=_optional(entry.team_id, lengths["team_id"]),
        customer_id=_optional(entry.customer_id, lengths["customer_id"]),
        provider=_optional(entry.provider, lengths["provider"]),
        created_at=_when(entry.created_at),
    )
