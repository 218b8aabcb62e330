"""Audit records in the store: batched inserts and filtered, cursor-paginated queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from toolpolicy.audit import AuditRecord
from toolpolicy.errors import InvalidRequest
from toolpolicy.store.engine import Store
from toolpolicy.store.schema import AuditRow

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters over audit records; every given field must match."""

    key: str | None = None
    team: str | None = None
    customer: str | None = None
    target: str | None = None
    decision: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    cursor: str | None = None
    """Opaque: the `next_cursor` of the previous page."""


class AuditLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def write(self, records: list[AuditRecord]) -> None:
        async with self.store.session() as session, session.begin():
            await session.execute(insert(AuditRow), [record.as_row() for record in records])

    async def query(self, query: AuditQuery) -> tuple[list[dict[str, Any]], str | None]:
        """A page of records, newest first, and the cursor of the next page (None on the last page)."""
        limit = max(1, min(query.limit, MAX_PAGE))
        statement = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit + 1)
        for column, value in (
            (AuditRow.key_name, query.key),
            (AuditRow.team, query.team),
            (AuditRow.customer, query.customer),
            (AuditRow.target, query.target),
            (AuditRow.decision, query.decision),
            (AuditRow.kind, query.kind),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if query.since is not None:
            statement = statement.where(AuditRow.ts >= query.since)
        if query.until is not None:
            statement = statement.where(AuditRow.ts < query.until)
        if query.cursor is not None:
            statement = statement.where(AuditRow.id < _decode_cursor(query.cursor))
        async with self.store.session() as session:
            rows = (await session.execute(statement)).scalars().all()
        page = [_render(row) for row in rows[:limit]]
        next_cursor = _encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return page, next_cursor


def _encode_cursor(row_id: int) -> str:
    return f"a{row_id:x}"


def _decode_cursor(cursor: str) -> int:
    try:
        if not cursor.startswith("a"):
            raise ValueError(cursor)
        return int(cursor[1:], 16)
    except ValueError:
        raise InvalidRequest(f"cursor {cursor!r} is not one this API returned", param="cursor") from None


def _render(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "ts": row.ts.isoformat(),
        "request_id": row.request_id,
        "kind": row.kind,
        "key_id": row.key_id,
        "key_name": row.key_name,
        "team": row.team,
        "customer": row.customer,
        "target": row.target,
        "decision": row.decision,
        "reason": row.reason,
        "status": row.status,
        "latency_ms": row.latency_ms,
        "tokens_in": row.tokens_in,
        "tokens_out": row.tokens_out,
        "cost_usd": float(row.cost_usd) if row.cost_usd is not None else None,
        "details": row.details,
    }
