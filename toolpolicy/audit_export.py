"""Audit export formats: JSON lines or CSV, produced record by record."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from toolpolicy.store.audit_log import RENDERED_FIELDS

ExportFormat = Literal["jsonl", "csv"]
COLUMNS = RENDERED_FIELDS
CONTENT_TYPES: dict[str, str] = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


async def export_lines(records: AsyncIterator[dict[str, Any]], fmt: ExportFormat) -> AsyncIterator[str]:
    if fmt == "jsonl":
        async for record in records:
            yield json.dumps(record, separators=(",", ":")) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    async for record in records:
        writer.writerow({**record, "details": json.dumps(record.get("details") or {}, sort_keys=True)})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


def parse_csv_export(text: str) -> list[dict[str, Any]]:
    """Read a CSV export back (for round-trip checks and tooling)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        row["details"] = json.loads(row["details"]) if row.get("details") else {}
    return rows
