"""Audit records in the store: an append-only hash chain, filtered queries, export, verification, retention.

Each record stores the hash of the previous one and a consecutive `seq`, so an edited record breaks its hash, a
deleted one leaves a gap, and a deleted tail disagrees with the chain head. Writers append under a lock on the
chain head row (one transaction per batch), so replicas writing together still form one chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from toolpolicy.audit import AuditRecord
from toolpolicy.batching import Emitted, WriterMark
from toolpolicy.errors import InvalidRequest
from toolpolicy.quarantine import QUARANTINED_KIND
from toolpolicy.store.audit_append import ChainAppender
from toolpolicy.store.audit_rows import FIELDS, record_hash
from toolpolicy.store.emissions import EmissionCheck, EmissionReport
from toolpolicy.store.engine import Store
from toolpolicy.store.schema import AuditChainRow, AuditRow, AuditWriterRow

MAX_PAGE = 1000
GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters over audit records; every given field must match."""

    key: str | None = None
    team: str | None = None
    customer: str | None = None
    target: str | None = None
    target_prefix: str | None = None
    """e.g. `docs/` for every tool of the server `docs`."""
    decision: str | None = None
    kind: str | None = None
    kinds: tuple[str, ...] | None = None
    """Any of these kinds (the dashboard's request log: `llm` and `tool_call`)."""
    request_id: str | None = None
    min_status: int | None = None
    """Status at least this (e.g. 400 for errors only)."""
    max_status: int | None = None
    """Status at most this (e.g. 399 for successes only)."""
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    cursor: str | None = None
    """Opaque: the `next_cursor` of the previous page."""


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    first_seq: int | None = None
    last_seq: int | None = None
    broken_seq: int | None = None
    problem: str | None = None
    emissions: EmissionReport | None = None
    """Records emitted by the gateway's writers but never written (checked when the chain itself holds)."""


async def _lock_chain(session: AsyncSession) -> AuditChainRow:
    # A no-op UPDATE takes the row lock on PostgreSQL and the write lock on SQLite before the head is read.
    await session.execute(update(AuditChainRow).where(AuditChainRow.id == 1).values(last_seq=AuditChainRow.last_seq))
    return (await session.execute(select(AuditChainRow).where(AuditChainRow.id == 1))).scalar_one()


class AuditLog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._appender = ChainAppender(store)

    async def write(self, records: list[AuditRecord]) -> None:
        """Append records written directly (no writer: they carry no emission numbers)."""
        await self._append([(record, None) for record in records], None)

    async def write_batch(self, batch: list[Emitted[AuditRecord]], mark: WriterMark) -> None:
        """Append a writer's records with their emission numbers, and its high-water mark, in one transaction."""
        await self._append([(emitted.item, emitted.number) for emitted in batch], mark)

    async def _append(self, records: list[tuple[AuditRecord, int | None]], mark: WriterMark | None) -> None:
        await self._appender.append(records, mark)

    def _filtered(self, query: AuditQuery) -> Select[AuditRow]:
        statement = select(AuditRow)
        for column, value in (
            (AuditRow.key_name, query.key),
            (AuditRow.team, query.team),
            (AuditRow.customer, query.customer),
            (AuditRow.target, query.target),
            (AuditRow.decision, query.decision),
            (AuditRow.kind, query.kind),
            (AuditRow.request_id, query.request_id),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if query.target_prefix is not None:
            statement = statement.where(AuditRow.target.startswith(query.target_prefix, autoescape=True))
        if query.kinds is not None:
            statement = statement.where(AuditRow.kind.in_(query.kinds))
        if query.min_status is not None:
            statement = statement.where(AuditRow.status >= query.min_status)
        if query.max_status is not None:
            statement = statement.where(AuditRow.status <= query.max_status)
        if query.since is not None:
            statement = statement.where(AuditRow.ts >= query.since)
        if query.until is not None:
            statement = statement.where(AuditRow.ts < query.until)
        return statement

    async def query(self, query: AuditQuery) -> tuple[list[dict[str, Any]], str | None]:
        """A page of records, newest first, and the cursor of the next page (None on the last page)."""
        limit = max(1, min(query.limit, MAX_PAGE))
        statement = self._filtered(query).order_by(AuditRow.seq.desc()).limit(limit + 1)
        if query.cursor is not None:
            statement = statement.where(AuditRow.seq < _decode_cursor(query.cursor))
        async with self.store.session() as session:
            rows = (await session.execute(statement)).scalars().all()
        page = [render(row) for row in rows[:limit]]
        next_cursor = _encode_cursor(rows[limit - 1].seq) if len(rows) > limit else None
        return page, next_cursor

    async def export(self, query: AuditQuery, *, page_size: int = 500) -> AsyncIterator[dict[str, Any]]:
        """Every matching record, oldest first, read page by page (the whole log never sits in memory)."""
        after = 0
        while True:
            statement = self._filtered(query).where(AuditRow.seq > after).order_by(AuditRow.seq).limit(page_size)
            async with self.store.session() as session:
                rows = (await session.execute(statement)).scalars().all()
            for row in rows:
                yield render(row, chain=True)
            if len(rows) < page_size:
                return
            after = rows[-1].seq

    async def verify(self, *, page_size: int = 1000) -> ChainReport:
        """Walk the chain from the oldest kept record; name the first record that does not fit, or what is missing.

        Beyond the chain (edits, deletions): every writer numbers what it emits, so a number missing between two
        written ones is a record emitted but never written, and so is one above the last written number of a writer
        that stopped cleanly. What a crashed writer still held cannot be told from what a running writer has in
        flight: those are reported as unconfirmed, not as missing.
        """
        async with self.store.session() as session:
            head = (await session.execute(select(AuditChainRow).where(AuditChainRow.id == 1))).scalar_one()
        expected_seq, previous, checked, first = head.anchor_seq + 1, head.anchor_hash, 0, None
        emissions = EmissionCheck(pruned=head.anchor_seq > 0)
        while True:
            statement = select(AuditRow).where(AuditRow.seq >= expected_seq).order_by(AuditRow.seq).limit(page_size)
            async with self.store.session() as session:
                rows = (await session.execute(statement)).scalars().all()
            for row in rows:
                first = row.seq if first is None else first
                if row.seq != expected_seq:
                    return ChainReport(False, checked, first, None, expected_seq, f"record {expected_seq} is missing")
                if row.prev_hash != previous:
                    return ChainReport(False, checked, first, None, row.seq, "its previous hash does not match")
                if record_hash(previous, row.seq, _fields(row)) != row.hash:
                    return ChainReport(False, checked, first, None, row.seq, "its content does not match its hash")
                previous, expected_seq, checked = row.hash, row.seq + 1, checked + 1
                if row.writer_id is not None and row.emit_seq is not None:
                    emissions.see(row.writer_id, row.emit_seq, quarantined=row.kind == QUARANTINED_KIND)
            if len(rows) < page_size:
                break
        if expected_seq - 1 != head.last_seq or previous != head.last_hash:
            return ChainReport(
                False, checked, first, None, expected_seq, f"records {expected_seq}..{head.last_seq} are missing"
            )
        async with self.store.session() as session:
            writers = (await session.execute(select(AuditWriterRow))).scalars().all()
        report = emissions.finish(writers)
        if report.missing:
            return ChainReport(False, checked, first, head.last_seq, None, report.describe_missing(), report)
        return ChainReport(True, checked, first, head.last_seq, emissions=report)

    async def prune(self, retention_days: float, *, now: datetime | None = None) -> int:
        """Delete records older than the retention, oldest first, keeping the rest verifiable; returns how many."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
        async with self.store.writing() as session:
            head = await _lock_chain(session)
            newest_old = select(func.max(AuditRow.seq)).where(AuditRow.ts < cutoff)
            oldest_new = select(func.min(AuditRow.seq)).where(AuditRow.ts >= cutoff)
            last_old, first_new = (
                (await session.execute(newest_old)).scalar(),
                (await session.execute(oldest_new)).scalar(),
            )
            if last_old is None:
                return 0
            # Only a prefix of the chain goes: stop before the first record that is still within retention.
            through = min(last_old, first_new - 1) if first_new is not None else last_old
            if through <= head.anchor_seq:
                return 0
            anchor = (await session.execute(select(AuditRow.hash).where(AuditRow.seq == through))).scalar_one()
            result = await session.execute(delete(AuditRow).where(AuditRow.seq <= through))
            head.anchor_seq, head.anchor_hash = through, anchor
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _fields(row: AuditRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in FIELDS}


def _encode_cursor(seq: int) -> str:
    return f"a{seq:x}"


def _decode_cursor(cursor: str) -> int:
    try:
        if not cursor.startswith("a"):
            raise ValueError(cursor)
        return int(cursor[1:], 16)
    except ValueError:
        raise InvalidRequest(f"cursor {cursor!r} is not one this API returned", param="cursor") from None


RENDERED_FIELDS = (
    "id",
    "ts",
    "request_id",
    "kind",
    "key_id",
    "key_name",
    "team",
    "customer",
    "target",
    "decision",
    "reason",
    "status",
    "latency_ms",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "details",
    "writer_id",
    "emit_seq",
    "prev_hash",
    "hash",
)
"""A record as the API and exports show it, in this order (the chain fields, the last four, only in exports)."""
_CHAIN_FIELDS = 4


def render(row: AuditRow, *, chain: bool = False) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": row.seq,
        "ts": row.ts.isoformat(),
        "cost_usd": float(row.cost_usd) if row.cost_usd is not None else None,
    }
    fields = RENDERED_FIELDS if chain else RENDERED_FIELDS[:-_CHAIN_FIELDS]
    return {name: values[name] if name in values else getattr(row, name) for name in fields}
