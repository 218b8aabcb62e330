"""The batch writers' transactions: on SQLite one kept connection (replaced when it is lost), and INSERTs of a few
row counts only, so their statements stay prepared."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite
from sqlalchemy.exc import DBAPIError

from toolpolicy.store import Store
from toolpolicy.store.faults import is_record_fault
from toolpolicy.store.ledger import SpendEntry, SpendLedger
from toolpolicy.store.raw_write import ROWS_PER_STATEMENT, Transaction, processors, stored_as_utc_text
from toolpolicy.store.schema import SpendRow

pytestmark = pytest.mark.anyio


def entries(start: int, count: int) -> list[SpendEntry]:
    return [SpendEntry(f"r{index}", "openai/gpt-4o", Decimal("0.01")) for index in range(start, start + count)]


async def spend_rows(store: Store) -> int:
    async with store.session() as session:
        return int((await session.execute(select(func.count()).select_from(SpendRow))).scalar_one())


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> Any:
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


async def test_sqlite_writes_keep_one_connection_and_reset_nothing(sqlite_store: Store) -> None:
    """A checkout per transaction cost a pool reset on its return (a rollback, one more hop to the driver's thread)."""
    pool_events: list[str] = []
    for name in ("checkout", "reset"):
        event.listen(sqlite_store.engine.sync_engine.pool, name, lambda *args, name=name: pool_events.append(name))
    ledger = SpendLedger(sqlite_store)
    for start in range(0, 50, 10):
        await ledger.write(entries(start, 10))
    assert pool_events == ["checkout"]
    assert await spend_rows(sqlite_store) == 50


async def test_a_kept_connection_the_driver_lost_is_replaced(sqlite_store: Store) -> None:
    ledger = SpendLedger(sqlite_store)
    await ledger.write(entries(0, 3))
    kept = sqlite_store._raw_connection
    assert kept is not None
    driver: Any = (await kept.get_raw_connection()).driver_connection
    await driver._execute(driver._conn.close)  # the sqlite3 connection gone under the pool's feet

    with pytest.raises(DBAPIError) as caught:
        await ledger.write(entries(3, 3))
    assert caught.value.connection_invalidated and not is_record_fault(caught.value)  # the writer keeps and retries
    await ledger.write(entries(3, 3))
    assert sqlite_store._raw_connection is not kept
    assert await spend_rows(sqlite_store) == 6


async def test_closing_the_store_closes_the_kept_connection(tmp_path: Path) -> None:
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await store.migrate()
    await SpendLedger(store).write(entries(0, 2))
    kept = store._raw_connection
    assert kept is not None and not kept.closed
    await store.close()
    assert kept.closed and store._raw_connection is None


@pytest.mark.parametrize("count", [1, 3, 13, 200, 700])
def test_sqlite_inserts_go_in_power_of_two_statements_in_order(count: int) -> None:
    """Every batch size would otherwise be a statement of its own, prepared anew (as costly as running it)."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 1000)  # at most 500 rows of two values a statement
    connection.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    inserts: list[str] = []
    connection.set_trace_callback(lambda sql: inserts.append(sql) if sql.startswith("INSERT") else None)
    rows = [(index, f"v{index}") for index in range(count)]
    Transaction(connection, connection.cursor(), "qmark", True).insert("t", ("a", "b"), rows)

    sizes = [sql.count("(") - 1 for sql in inserts]
    assert sum(sizes) == count and all(size & (size - 1) == 0 and size <= 256 for size in sizes)
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) >= len(sizes) - 2
    assert connection.execute("SELECT a, b FROM t ORDER BY rowid").fetchall() == rows


def test_a_statement_takes_at_most_256_rows_and_parts_are_the_statements() -> None:
    """The driver binds a statement's values holding the GIL: a bounded statement bounds how long the loop waits."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    inserts: list[str] = []
    connection.set_trace_callback(lambda sql: inserts.append(sql) if sql.startswith("INSERT") else None)
    rows = [(index, f"v{index}") for index in range(1000)]
    transaction = Transaction(connection, connection.cursor(), "qmark", True)
    transaction.insert("t", ("a", "b"), rows)

    sizes = [sql.count("(") - 1 for sql in inserts]
    assert sizes == [ROWS_PER_STATEMENT] * 3 + [128, 64, 32, 8]
    assert [stop - start for start, stop in transaction.parts(1000, 2)] == sizes
    assert transaction.parts(1000, 2)[0] == (0, 256) and transaction.parts(1000, 2)[-1] == (992, 1000)
    assert connection.execute("SELECT a, b FROM t ORDER BY rowid").fetchall() == rows


def test_postgresql_parts_are_runs_of_at_most_256_rows() -> None:
    transaction = Transaction(None, None, "numeric_dollar", False)
    assert transaction.parts(600, 21) == [(0, 256), (256, 512), (512, 600)]
    assert transaction.parts(256, 21) == [(0, 256)] and transaction.parts(0, 21) == []


SPEND_CREATED = SpendRow.__table__.c["created_at"]


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=45))),
        datetime(999, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1))),
        datetime(2099, 12, 31, 23, 59, 59, 123456, tzinfo=UTC),
    ],
)
def test_a_utc_datetime_is_bound_on_sqlite_as_sqlalchemy_binds_it(value: datetime) -> None:
    dialect = aiosqlite.dialect()
    own = SPEND_CREATED.type.dialect_impl(dialect).bind_processor(dialect)
    assert own is not None and stored_as_utc_text(SPEND_CREATED, dialect)
    [(_, fast)] = processors(SpendRow.__table__, ("created_at",), dialect)  # type: ignore[arg-type]
    assert fast(value) == own(value)


def previous_utc_text(process: Any) -> Any:
    """`raw_write.utc_text` as it was, formatting every value with `isoformat`: the reference."""

    def bind(value: Any) -> Any:
        if value.__class__ is datetime and value.tzinfo is not None:
            utc = value if value.tzinfo is UTC else value.astimezone(UTC)
            return utc.isoformat(" ", "microseconds")[:26]
        return process(value)

    return bind


def outcome(bind: Any, value: Any) -> tuple[Any, ...]:
    """What `bind(value)` gives, or the type and text of what it raises."""
    try:
        return ("bound", bind(value))
    except Exception as error:
        return ("raised", type(error), str(error))


ANY_ZONE = st.one_of(
    st.none(),
    st.just(UTC),
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)).map(timezone),
    st.timezones(),
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.none(), st.datetimes(timezones=ANY_ZONE)), min_size=1, max_size=12))
def test_every_value_is_bound_on_sqlite_as_isoformat_and_sqlalchemy_bound_it(values: list[datetime | None]) -> None:
    """Naive, UTC, fixed offsets, zones with DST, near the ends of the calendar (where `astimezone` may overflow):
    the same text, or the same error, as before; one processor over many rows, as a writer binds them."""
    dialect = aiosqlite.dialect()
    own = SPEND_CREATED.type.dialect_impl(dialect).bind_processor(dialect)
    assert own is not None
    [(_, fast)] = processors(SpendRow.__table__, ("created_at",), dialect)  # type: ignore[arg-type]
    before = previous_utc_text(own)
    for value in [*values, *values]:
        expected = outcome(before, value)
        assert outcome(fast, value) == expected
        assert outcome(own, value) == expected


def test_anything_but_an_aware_datetime_is_bound_or_refused_as_before() -> None:
    dialect = aiosqlite.dialect()
    [(_, fast)] = processors(SpendRow.__table__, ("created_at",), dialect)  # type: ignore[arg-type]
    assert fast(None) is None
    with pytest.raises(ValueError, match="naive"):
        fast(datetime(2026, 11, 25, 12, 0))
    with pytest.raises(AttributeError):
        fast("2026-11-25")
    assert not stored_as_utc_text(SPEND_CREATED, asyncpg.dialect())
