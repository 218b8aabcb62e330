"""One write transaction as one plain function on the driver's connection: what the batch writers append with.

Through SQLAlchemy's async session a transaction costs one hand-over between the event loop and the driver per
driver call (about twenty for begin, a statement, commit), plus the ORM's and Core's work per row. A batch writer
knows its statements and has bound its values already, so its whole transaction is one function of a DB-API
cursor, run where the driver runs it:

- On SQLite the function runs whole in aiosqlite's own thread (one hand-over), and rows go in multi-row INSERTs:
  sqlite3 lets go of the GIL around every statement step, and under a busy event loop getting it back takes up to
  the switch interval (5 ms), so `executemany` (one step per row) made a 200-row batch take most of a second. The
  statements have power-of-two row counts, so the few there are stay prepared (`statement_sizes`), and at most
  `ROWS_PER_STATEMENT` rows, so the GIL is let go often.
- On PostgreSQL it runs through `run_sync` on the asyncpg adapter, whose `executemany` sends the rows to asyncpg's
  pipelined `executemany` (one round trip, one prepared statement whatever the batch's size).

Driver errors come out as SQLAlchemy's wrapped errors, as they did through the session, so a writer tells a
rejected record from an unavailable store the same way (`faults.is_record_fault`).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import accumulate, chain
from typing import Any, Concatenate, ParamSpec

from sqlalchemy import Column, Table, exc as sa_exc
from sqlalchemy.engine import Connection, Dialect

from toolpolicy.store.engine import Store
from toolpolicy.store.schema import UTCDateTime
from toolpolicy.store.utc_text import UTCText

P = ParamSpec("P")
Processor = Callable[[Any], Any]
ROWS_PER_STATEMENT = 256
"""The most rows one INSERT takes on SQLite (one `executemany` on PostgreSQL, when the caller inserts by `parts`).
sqlite3 binds a statement's values holding the GIL and lets go of it only to run the statement: 256 rows of
twenty-one columns take ~0.5 ms to bind and run here, 1,024 rows ~2.2 ms, while the event loop may be waiting."""


def processors(table: Table, names: Sequence[str], dialect: Dialect) -> list[tuple[int, Processor]]:
    """`(position, bind processor)` of each named column whose type converts values for `dialect` (a UTC datetime
    column on SQLite by `utc_text`, what its processor gives in a fraction of the time)."""
    found: list[tuple[int, Processor]] = []
    for position, name in enumerate(names):
        column: Column[Any] = table.c[name]
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            found.append((position, utc_text(process) if stored_as_utc_text(column, dialect) else process))
    return found


SQLITE_DATETIME = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
"""SQLAlchemy's storage format for SQLite's DATETIME, which `stored_as_utc_text` checks a column still has."""


def stored_as_utc_text(column: Column[Any], dialect: Dialect) -> bool:
    """Whether `column` binds an aware datetime on `dialect` as SQLite's DATETIME text of its UTC time
    (`YYYY-MM-DD HH:MM:SS.ffffff`, no offset): what `utc_text` writes without SQLAlchemy's formatting."""
    impl = column.type.dialect_impl(dialect)
    storage = getattr(getattr(impl, "impl_instance", None), "_storage_format", None)
    return dialect.name == "sqlite" and isinstance(column.type, UTCDateTime) and storage == SQLITE_DATETIME


def utc_text(process: Processor) -> Processor:
    """`process` (a `UTCDateTime` column's SQLite processor) for an aware datetime written directly: its UTC ISO form
    with a space for the `T` and no offset (`isoformat(" ", "microseconds")[:26]`, from its minute's text
    remembered: `UTCText`). Anything else (naive, None, a subclass, not a datetime) goes through `process`, to be
    bound or refused as it always was."""
    text = UTCText().sqlite

    def bind(value: Any) -> Any:
        if value.__class__ is datetime and value.tzinfo is not None:
            return text(value if value.tzinfo is UTC else value.astimezone(UTC))
        return process(value)

    return bind


def bind_row(values: list[Any], bound_by: Sequence[tuple[int, Processor]], what: str, table: str) -> tuple[Any, ...]:
    """`values` through their columns' bind processors (what SQLAlchemy would apply). A value no column can take
    raises `StatementError` naming `what`, as SQLAlchemy's own binding would: a record fault, found before any I/O
    (the writer then isolates and quarantines the record)."""
    try:
        for position, process in bound_by:
            values[position] = process(values[position])
    except (TypeError, ValueError) as error:
        raise sa_exc.StatementError(f"{what} cannot be bound ({error})", f"INSERT INTO {table}", None, error) from error
    return tuple(values)


def bound(sql: str, paramstyle: str) -> str:
    """`sql` written with `?` placeholders, in the driver's parameter style."""
    if paramstyle == "qmark":
        return sql
    if paramstyle == "format":
        return sql.replace("?", "%s")
    if paramstyle == "numeric_dollar":
        parts = sql.split("?")
        return "".join(f"{part}${index}" for index, part in enumerate(parts[:-1], 1)) + parts[-1]
    raise ValueError(f"unsupported DB-API parameter style {paramstyle!r}")


@functools.lru_cache(maxsize=64)
def insert_sql(table: str, columns: tuple[str, ...], rows: int, suffix: str, paramstyle: str) -> str:
    """`INSERT INTO table (columns) VALUES (...), ... suffix` for `rows` rows, in the driver's parameter style."""
    one = f"({', '.join('?' for _ in columns)})"
    values = ", ".join(one for _ in range(rows))
    return bound(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}{suffix}", paramstyle)


class Transaction:
    """The cursor of a transaction under way, and the statement it ran last (named in a wrapped error)."""

    __slots__ = ("connection", "cursor", "paramstyle", "sqlite", "statement")

    def __init__(self, connection: Any, cursor: Any, paramstyle: str, sqlite: bool) -> None:
        self.connection = connection
        self.cursor = cursor
        self.paramstyle = paramstyle
        self.sqlite = sqlite
        self.statement = "BEGIN"

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        """Run `sql` (already in the driver's parameter style); returns the cursor."""
        self.statement = sql
        self.cursor.execute(sql, parameters)
        return self.cursor

    def insert(self, table: str, columns: tuple[str, ...], rows: Sequence[Sequence[Any]], suffix: str = "") -> None:
        """Insert `rows` (values in `columns` order), each followed by `suffix` (e.g. an `ON CONFLICT` clause).

        On SQLite, in multi-row statements of power-of-two row counts (`parts`); on PostgreSQL, one `executemany`.
        """
        if not rows:
            return
        if not self.sqlite:
            self.statement = insert_sql(table, columns, 1, suffix, self.paramstyle)
            self.cursor.executemany(self.statement, rows)
            return
        for start, stop in self.parts(len(rows), len(columns)):
            self.statement = insert_sql(table, columns, stop - start, suffix, self.paramstyle)
            self.cursor.execute(self.statement, list(chain.from_iterable(rows[start:stop])))

    def parts(self, rows: int, columns: int) -> list[tuple[int, int]]:
        """`(start, stop)` of runs of at most `ROWS_PER_STATEMENT` rows: on SQLite the statements `insert` puts
        `rows` rows of `columns` values in (power-of-two row counts, within the driver's limit on variables)."""
        if self.sqlite:
            most = max(1, self.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // columns)
            sizes = statement_sizes(rows, min(most, ROWS_PER_STATEMENT))
        else:
            sizes = [min(ROWS_PER_STATEMENT, rows - start) for start in range(0, rows, ROWS_PER_STATEMENT)]
        ends = list(accumulate(sizes))
        return list(zip([0, *ends], ends, strict=False))


def statement_sizes(rows: int, most: int) -> list[int]:
    """The row counts of the statements `rows` rows go in, none above `most`: powers of two, largest first (200 rows
    go in 128 + 64 + 8).

    sqlite3 keeps prepared statements by their text, and a statement of every batch size would be prepared anew:
    a 200-row INSERT takes about as long to prepare as to run (its program has a part per row). With powers of two
    a table has a dozen statements at most, each prepared once and then found in the cache, for a few more
    statements a batch.
    """
    largest = 1 << (most.bit_length() - 1)
    sizes = [largest] * (rows // largest)
    left = rows % largest
    while left:
        size = 1 << (left.bit_length() - 1)
        sizes.append(size)
        left -= size
    return sizes


Work = Callable[Concatenate[Transaction, P], None]


class RawWriter:
    """Runs write transactions on one store's driver connections, serialised with its other writes on SQLite."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dialect = store.engine.dialect
        self.sqlite = self.dialect.name == "sqlite"

    async def run(self, work: Work[P], *args: P.args, **kwargs: P.kwargs) -> None:
        """`work(transaction, *args)` in one transaction, committed when it returns, rolled back when it raises."""

        def call(transaction: Transaction) -> None:
            work(transaction, *args, **kwargs)

        async with self.store.raw_writing() as connection:
            try:
                if self.sqlite:
                    driver: Any = (await connection.get_raw_connection()).driver_connection
                    # aiosqlite owns the sqlite3 connection in its thread, and `_execute` queues a call there
                    # (SQLAlchemy's own aiosqlite adapter reaches into the same internals).
                    await driver._execute(self._transaction, driver._conn, sqlite3.Error, call)
                else:
                    await connection.run_sync(self._run_adapted, call)
            except sa_exc.DBAPIError as error:
                if error.connection_invalidated:
                    await connection.invalidate(error.orig)
                raise

    def _run_adapted(self, connection: Connection, call: Callable[[Transaction], None]) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        self._transaction(dbapi_connection, self.dialect.loaded_dbapi.Error, call)

    def _transaction(self, connection: Any, base_error: type[Exception], call: Callable[[Transaction], None]) -> None:
        """The whole transaction on a DB-API connection (in aiosqlite's thread, or under `run_sync`)."""
        transaction = Transaction(connection, None, self.dialect.paramstyle, self.sqlite)
        try:
            transaction.cursor = connection.cursor()
            try:
                if self.sqlite:
                    transaction.execute("BEGIN IMMEDIATE")  # the write lock, before anything is read
                call(transaction)
            finally:
                transaction.cursor.close()
            transaction.statement = "COMMIT"
            connection.commit()
        except BaseException as error:
            try:
                connection.rollback()
            except Exception:  # the error that made us roll back is the one to report
                pass
            if isinstance(error, base_error):
                raise sa_exc.DBAPIError.instance(
                    transaction.statement,
                    None,
                    error,
                    base_error,
                    connection_invalidated=self.dialect.is_disconnect(error, connection, None),  # type: ignore[arg-type]
                    dialect=self.dialect,
                ) from error
            raise
