"""Appending a batch of audit records to the chain in one transaction, with as little event-loop work as it takes.

The records are put in canonical form and bound before the transaction starts (`audit_rows`), a slice at a time with
the event loop let go between slices (`PREPARE_SLICE`), so requests are not held up behind a whole batch's
preparation. The transaction itself is a short function on the driver's connection (`raw_write`: one hand-over to
aiosqlite's thread on SQLite, one `run_sync` on PostgreSQL): lock the chain head, link the batch to it (one SHA-256
per record) and insert its rows a run at a time (multi-row INSERTs on SQLite, a pipelined `executemany` per run on
PostgreSQL), move the head, record the writer's high-water mark, commit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, repeat
from operator import is_, itemgetter
from typing import Any

from toolpolicy.audit import AuditRecord
from toolpolicy.batching import WriterMark, in_slices
from toolpolicy.store.audit_rows import COLUMNS, AuditRowBinder, PreparedBatch
from toolpolicy.store.engine import Store
from toolpolicy.store.raw_write import RawWriter, Transaction, bound, processors
from toolpolicy.store.schema import AuditWriterRow

_WRITER = AuditWriterRow.__table__
_REPORTED = ("writer_id", "started_at", "updated_at", "emitted", "dropped", "closed_at")
PREPARE_SLICE = 16
"""Records prepared in one go on the event loop, between two yields to it: ~0.1-0.2 ms of the loop at 7-12 us a
record. A 1,000-record batch prepared in one go held every request behind it for 7-12 ms (`bench/audit_writer.py
--lag`: p99 of requests' lateness 9-11 ms in one go, 2-3 ms in slices of 16; with slices of 64, 6-7% of requests
more than 1 ms late against 1-2%)."""


@dataclass(frozen=True, slots=True)
class _Statements:
    lock: str
    head: str
    move_head: str
    report: str
    report_closed: str
    first_report: str


def _statements(paramstyle: str) -> _Statements:
    def bind(sql: str) -> str:
        return bound(sql, paramstyle)

    report = "UPDATE audit_writers SET updated_at = ?, emitted = ?, dropped = ?{} WHERE writer_id = ?"
    return _Statements(
        # A no-op UPDATE takes the head row's lock on PostgreSQL and reads the head.
        lock="UPDATE audit_chain SET last_seq = last_seq WHERE id = 1 RETURNING last_seq, last_hash",
        head="SELECT last_seq, last_hash FROM audit_chain WHERE id = 1",
        move_head=bind("UPDATE audit_chain SET last_seq = ?, last_hash = ? WHERE id = 1"),
        report=bind(report.format("")),
        report_closed=bind(report.format(", closed_at = ?")),
        first_report=bind(f"INSERT INTO audit_writers ({', '.join(_REPORTED)}) VALUES (?, ?, ?, ?, ?, ?)"),
    )


@dataclass(frozen=True, slots=True)
class _Report:
    """A writer's high-water mark, bound: the UPDATE's parameters, and the INSERT's when it has no row yet."""

    update: tuple[Any, ...]
    insert: tuple[Any, ...]
    closed: bool


class ChainAppender:
    """Appends batches of audit records (and writers' marks) to one store's chain."""

    def __init__(self, store: Store) -> None:
        self.store = store
        dialect = store.engine.dialect
        self._raw = RawWriter(store)
        self._binder = AuditRowBinder(dialect)
        self._sql = _statements(dialect.paramstyle)
        self._writer_processors = dict(processors(_WRITER, _REPORTED, dialect))  # type: ignore[arg-type]
        self._sqlite = dialect.name == "sqlite"

    async def append(self, records: list[tuple[AuditRecord, int | None]], mark: WriterMark | None) -> None:
        """Append `records` (with their emission numbers, None when written directly) and `mark`, atomically."""
        prepared = await self._prepare(records, mark.writer_id if mark is not None else None)
        report = self._report(mark) if mark is not None else None
        await self._raw.run(self._transaction, prepared, report)

    async def _prepare(self, records: list[tuple[AuditRecord, int | None]], writer_id: str | None) -> PreparedBatch:
        """`records` prepared `PREPARE_SLICE` at a time, letting the event loop serve requests between slices. A record
        no column takes raises `StatementError` here, before any I/O, whichever slice it is in."""
        return PreparedBatch.joined(
            [self._binder.prepare(part, writer_id) async for part in in_slices(records, PREPARE_SLICE)]
        )

    def _transaction(self, transaction: Transaction, prepared: PreparedBatch, report: _Report | None) -> None:
        """The whole transaction (in aiosqlite's thread, or under `run_sync`)."""
        sql = self._sql
        if len(prepared):
            cursor = transaction.execute(sql.head if self._sqlite else sql.lock)
            seq, digest = cursor.fetchone()
            # Linked and inserted a statement's run at a time: the driver lets go of the GIL (SQLite) or of the
            # event loop (PostgreSQL's `run_sync`) between runs, where linking a whole batch first held it throughout.
            for start, stop in transaction.parts(len(prepared), len(COLUMNS)):
                rows, seq, digest = prepared.link(seq, digest, start, stop)
                if self._sqlite:
                    insert_nulls_written(transaction, rows)
                else:
                    transaction.insert("audit_events", COLUMNS, rows)
            transaction.execute(sql.move_head, (seq, digest))
        if report is not None:
            cursor = transaction.execute(sql.report_closed if report.closed else sql.report, report.update)
            if not cursor.rowcount:
                transaction.execute(sql.first_report, report.insert)

    def _report(self, mark: WriterMark) -> _Report:
        now = datetime.now(UTC)
        values = {
            "writer_id": mark.writer_id,
            "started_at": now,
            "updated_at": now,
            "emitted": mark.emitted,
            "dropped": mark.dropped,
            "closed_at": now if mark.closed else None,
        }
        row = [values[name] for name in _REPORTED]
        for position, process in self._writer_processors.items():
            row[position] = process(row[position])
        writer_id, _, updated_at, emitted, dropped, closed_at = row
        update = (updated_at, emitted, dropped, closed_at) if mark.closed else (updated_at, emitted, dropped)
        return _Report(update=(*update, writer_id), insert=tuple(row), closed=mark.closed)


def insert_nulls_written(transaction: Transaction, rows: Sequence[tuple[Any, ...]]) -> None:
    """`transaction.insert("audit_events", COLUMNS, rows)` on SQLite (one statement: `rows` is one of its runs), with
    the columns that are None in every row written as `NULL` in the statement rather than bound.

    sqlite3 binds an exact str, int or float as it is, but None only after asking for an adapter (a lookup of two
    absent attributes that raises and clears AttributeError each time): about 3,300 instructions a value, and a
    tool call's record has three or four (no tokens, no cost, no reason). Such columns are the same few in every
    record of a kind, so the statements stay few: one per run size and set of such columns."""
    first = rows[0]
    nulls = tuple(
        position
        for position in range(_CHAIN_COLUMNS, len(first))
        if first[position] is None and all(map(is_, map(itemgetter(position), rows), repeat(None)))
    )
    if not nulls:
        transaction.insert("audit_events", COLUMNS, rows)
        return
    sql, kept = _with_nulls(len(rows), nulls)
    transaction.execute(sql, list(chain.from_iterable(map(kept, rows))))


_CHAIN_COLUMNS = 3
"""seq, prev_hash and hash, never None."""


@functools.lru_cache(maxsize=64)
def _with_nulls(rows: int, nulls: tuple[int, ...]) -> tuple[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]]:
    """The INSERT of `rows` rows with the columns at `nulls` written `NULL`, and what picks a row's other values."""
    one = f"({', '.join('NULL' if position in nulls else '?' for position in range(len(COLUMNS)))})"
    sql = f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES {', '.join(one for _ in range(rows))}"
    return sql, itemgetter(*(position for position in range(len(COLUMNS)) if position not in nulls))
