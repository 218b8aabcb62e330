"""Appending a batch of audit records to the chain in one transaction, with as little event-loop work as it takes.

The records are put in canonical form and bound before the transaction starts (`audit_rows`); the transaction
itself is a short function on the driver's connection: lock the chain head, link the batch to it (one SHA-256 per
record), insert every row, move the head, record the writer's high-water mark, commit.

On SQLite that function runs whole in aiosqlite's own thread: one hand-over for the transaction, where going through
SQLAlchemy's async session costs one per driver call (about twenty), and the rows go in a few multi-row INSERTs.
On PostgreSQL it runs through `run_sync` on the asyncpg adapter, whose `executemany` sends the batch to asyncpg's
pipelined `executemany` (one round trip). Driver errors come out as SQLAlchemy's wrapped errors, as they did
through the session, so the writer tells a rejected record from an unavailable store the same way.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from toolpolicy.audit import AuditRecord
from toolpolicy.batching import WriterMark
from toolpolicy.store.audit_rows import COLUMNS, AuditRowBinder, PreparedBatch, processors
from toolpolicy.store.engine import Store
from toolpolicy.store.schema import AuditWriterRow

_WRITER = AuditWriterRow.__table__
_REPORTED = ("writer_id", "started_at", "updated_at", "emitted", "dropped", "closed_at")


@dataclass(frozen=True, slots=True)
class _Statements:
    lock: str
    head: str
    insert: str
    move_head: str
    report: str
    report_closed: str
    first_report: str


def _bound(sql: str, paramstyle: str) -> str:
    """`sql` written with `?` placeholders, in the driver's parameter style."""
    if paramstyle == "qmark":
        return sql
    if paramstyle == "format":
        return sql.replace("?", "%s")
    if paramstyle == "numeric_dollar":
        parts = sql.split("?")
        return "".join(f"{part}${index}" for index, part in enumerate(parts[:-1], 1)) + parts[-1]
    raise ValueError(f"unsupported DB-API parameter style {paramstyle!r}")


def _statements(paramstyle: str) -> _Statements:
    def bind(sql: str) -> str:
        return _bound(sql, paramstyle)

    report = "UPDATE audit_writers SET updated_at = ?, emitted = ?, dropped = ?{} WHERE writer_id = ?"
    return _Statements(
        # A no-op UPDATE takes the head row's lock on PostgreSQL and reads the head.
        lock="UPDATE audit_chain SET last_seq = last_seq WHERE id = 1 RETURNING last_seq, last_hash",
        head="SELECT last_seq, last_hash FROM audit_chain WHERE id = 1",
        insert=bind(f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"),
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
        self._dialect = dialect
        self._binder = AuditRowBinder(dialect)
        self._sql = _statements(dialect.paramstyle)
        self._writer_processors = dict(processors(_WRITER, _REPORTED, dialect))  # type: ignore[arg-type]
        self._sqlite = dialect.name == "sqlite"

    async def append(self, records: list[tuple[AuditRecord, int | None]], mark: WriterMark | None) -> None:
        """Append `records` (with their emission numbers, None when written directly) and `mark`, atomically."""
        prepared = self._binder.prepare(records, mark.writer_id if mark is not None else None)
        report = self._report(mark) if mark is not None else None
        async with self.store.raw_writing() as connection:
            try:
                if self._sqlite:
                    driver: Any = (await connection.get_raw_connection()).driver_connection
                    # aiosqlite owns the sqlite3 connection in its thread, and `_execute` queues a call there
                    # (SQLAlchemy's own aiosqlite adapter reaches into the same internals).
                    await driver._execute(self._transaction, driver._conn, sqlite3.Error, prepared, report)
                else:
                    await connection.run_sync(self._run_adapted, prepared, report)
            except sa_exc.DBAPIError as error:
                if error.connection_invalidated:
                    await connection.invalidate(error.orig)
                raise

    def _run_adapted(self, connection: Connection, prepared: PreparedBatch, report: _Report | None) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        self._transaction(dbapi_connection, self._dialect.loaded_dbapi.Error, prepared, report)

    def _transaction(
        self, connection: Any, base_error: type[Exception], prepared: PreparedBatch, report: _Report | None
    ) -> None:
        """The whole transaction on a DB-API connection (in aiosqlite's thread, or under `run_sync`)."""
        sql = self._sql
        statement = "BEGIN"
        try:
            cursor = connection.cursor()
            try:
                if self._sqlite:
                    cursor.execute("BEGIN IMMEDIATE")  # the write lock, before the head is read
                if len(prepared):
                    statement = sql.head if self._sqlite else sql.lock
                    cursor.execute(statement)
                    last_seq, last_hash = cursor.fetchone()
                    rows, seq, digest = prepared.link(last_seq, last_hash)
                    statement = self._insert(cursor, connection, rows)
                    statement = sql.move_head
                    cursor.execute(statement, (seq, digest))
                if report is not None:
                    statement = sql.report_closed if report.closed else sql.report
                    cursor.execute(statement, report.update)
                    if not cursor.rowcount:
                        statement = sql.first_report
                        cursor.execute(statement, report.insert)
            finally:
                cursor.close()
            statement = "COMMIT"
            connection.commit()
        except BaseException as error:
            try:
                connection.rollback()
            except Exception:  # the error that made us roll back is the one to report
                pass
            if isinstance(error, base_error):
                raise sa_exc.DBAPIError.instance(
                    statement,
                    None,
                    error,
                    base_error,
                    connection_invalidated=self._dialect.is_disconnect(error, connection, None),  # type: ignore[arg-type]
                    dialect=self._dialect,
                ) from error
            raise

    def _insert(self, cursor: Any, connection: Any, rows: list[tuple[Any, ...]]) -> str:
        """On SQLite, the rows in a few multi-row INSERTs (as many as its parameter limit allows in each): sqlite3
        lets go of the GIL around every statement step, and under a busy event loop getting it back takes up to
        the switch interval (5 ms), so one step per row made a 200-row batch take most of a second under load.
        On PostgreSQL, one `executemany` (one prepared statement, whatever the batch's size)."""
        if not self._sqlite:
            cursor.executemany(self._sql.insert, rows)
            return self._sql.insert
        per_statement = max(1, connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS))
        statement = ""
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            statement = self._multi_insert(len(chunk))
            cursor.execute(statement, [value for row in chunk for value in row])
        return statement

    @functools.lru_cache(maxsize=8)  # noqa: B019 (one appender per store, for the process's life)
    def _multi_insert(self, count: int) -> str:
        one = f"({', '.join('?' for _ in COLUMNS)})"
        values = ", ".join(one for _ in range(count))
        return _bound(f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES {values}", self._dialect.paramstyle)

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
        bound = [values[name] for name in _REPORTED]
        for position, process in self._writer_processors.items():
            bound[position] = process(bound[position])
        writer_id, _, updated_at, emitted, dropped, closed_at = bound
        update = (updated_at, emitted, dropped, closed_at) if mark.closed else (updated_at, emitted, dropped)
        return _Report(update=(*update, writer_id), insert=tuple(bound), closed=mark.closed)
