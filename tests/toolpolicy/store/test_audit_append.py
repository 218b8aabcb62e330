"""Appending whole batches on the driver's connection: the same rows and chain, quarantine, order, and outages."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError, StatementError

from tests.conftest import StoreTarget
from tests.toolpolicy.store.test_audit_rows import reference_hash, varied
from toolpolicy import quarantine
from toolpolicy.audit import AuditRecord
from toolpolicy.batching import BatchWriter, Emitted, StoreUnavailable, WriterMark
from toolpolicy.quarantine import QUARANTINED_KIND
from toolpolicy.store import Store
from toolpolicy.store.audit_append import PREPARE_SLICE, ChainAppender, insert_nulls_written
from toolpolicy.store.audit_log import GENESIS, AuditLog
from toolpolicy.store.audit_rows import COLUMNS, AuditRowBinder
from toolpolicy.store.faults import is_record_fault
from toolpolicy.store.raw_write import Transaction
from toolpolicy.store.schema import AuditRow

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 1, tzinfo=UTC)
STORED = (
    *("ts", "request_id", "kind", "key_id", "key_name", "team", "customer", "target", "decision", "reason"),
    *("status", "latency_ms", "tokens_in", "tokens_out", "cost_usd", "details", "writer_id", "emit_seq"),
)


def plain(index: int) -> AuditRecord:
    return AuditRecord(f"r{index}", "llm", "openai/gpt-4o", "allow", 200, 1.5, key_name="bot", ts=START)


def writer_for(log: AuditLog, batch_size: int) -> BatchWriter[AuditRecord]:
    return BatchWriter[AuditRecord](
        log.write_batch,
        name="audit",
        batch_size=batch_size,
        is_record_fault=is_record_fault,
        quarantine=quarantine.audit_record,
        retry_initial=0.01,
    )


async def stored_rows(store: Store) -> list[AuditRow]:
    async with store.session() as session:
        return list((await session.execute(select(AuditRow).order_by(AuditRow.seq))).scalars().all())


async def test_one_batch_is_the_chain_written_record_by_record(audit_log: AuditLog) -> None:
    records = [varied(index) for index in range(1, 301)]
    writer_id = "a" * 32
    await audit_log.write_batch([Emitted(n, r) for n, r in enumerate(records, 1)], WriterMark(writer_id, 300, 0))

    rows = await stored_rows(audit_log.store)
    previous = GENESIS
    for seq, (record, row) in enumerate(zip(records, rows, strict=True), start=1):
        expected = reference_hash(previous, seq, {**record.as_row(), "writer_id": writer_id, "emit_seq": seq})
        assert (row.seq, row.prev_hash, row.hash) == (seq, previous, expected)
        previous = expected
    report = await audit_log.verify()
    assert report.ok and report.checked == 300 and report.emissions is not None and not report.emissions.unconfirmed


async def test_the_rows_are_what_sqlalchemy_s_own_insert_stores(audit_log: AuditLog) -> None:
    """Byte for byte in the columns (timestamps, costs as each backend keeps them), read back raw; `details` is the
    same JSON value, kept in the hash's canonical form (sorted keys, no spaces) where the ORM kept `json.dumps`'s."""
    records = [varied(index) for index in range(1, 13)]
    await audit_log.write_batch([Emitted(n, r) for n, r in enumerate(records, 1)], WriterMark("a" * 32, 12, 0))
    expected: list[dict[str, Any]] = [
        {**r.as_row(), "writer_id": "a" * 32, "emit_seq": n, "seq": 1000 + n, "prev_hash": "-", "hash": "-"}
        for n, r in enumerate(records, 1)
    ]
    async with audit_log.store.writing() as session:
        await session.execute(insert(AuditRow), expected)  # the ORM path the writer used to take
    columns = ", ".join(STORED)
    async with audit_log.store.engine.connect() as connection:
        raw = (await connection.exec_driver_sql(f"SELECT {columns} FROM audit_events ORDER BY seq")).all()
    details = STORED.index("details")
    assert len(raw) == 24
    for ours, theirs, record in zip(raw[:12], raw[12:], records, strict=True):
        assert ours[:details] + ours[details + 1 :] == theirs[:details] + theirs[details + 1 :]
        ours_details, theirs_details = ours[details], theirs[details]
        if isinstance(ours_details, str):  # SQLite gives the text back; asyncpg decodes it
            assert ours_details == json.dumps(record.details, sort_keys=True, separators=(",", ":"))
            ours_details, theirs_details = json.loads(ours_details), json.loads(theirs_details)
        assert ours_details == theirs_details == record.details


async def test_a_poisoned_record_in_a_big_batch_is_quarantined_in_its_place(
    audit_log: AuditLog, store_target: StoreTarget
) -> None:
    records = [plain(index) for index in range(1000)]
    records[137] = AuditRecord("p-unserialisable", "llm", "x", "deny", 403, 1.0, details={"x": object()}, ts=START)
    if store_target.backend == "sqlite":  # NaN is stored as NULL there, which the column refuses
        records[802] = AuditRecord("p-nan", "llm", "x", "allow", 200, float("nan"), ts=START)
    else:
        records[802] = AuditRecord("x" * 100, "llm", "x", "allow", 200, 1.0, ts=START)  # longer than the column
    writer = writer_for(audit_log, batch_size=1000)
    for record in records:
        writer.emit(record)
    await writer.flush()

    assert (writer.written, writer.quarantined, writer.dropped, writer.pending) == (1000, 2, 0, 0)
    rows = await stored_rows(audit_log.store)
    assert [row.emit_seq for row in rows] == list(range(1, 1001))
    assert [row.emit_seq for row in rows if row.kind == QUARANTINED_KIND] == [138, 803]
    assert [row.request_id for row in rows if row.kind != QUARANTINED_KIND] == [
        record.request_id for index, record in enumerate(records) if index not in (137, 802)
    ]
    assert (await audit_log.verify()).ok


async def test_order_and_numbers_hold_across_flushes_of_uneven_sizes(audit_log: AuditLog) -> None:
    writer = writer_for(audit_log, batch_size=64)
    emitted = 0
    for size in random.Random(5).choices(range(1, 300), k=8):
        for _ in range(size):
            emitted += 1
            writer.emit(plain(emitted))
        await writer.flush()
    rows = await stored_rows(audit_log.store)
    assert [row.emit_seq for row in rows] == list(range(1, emitted + 1)) == [row.seq for row in rows]
    assert [row.request_id for row in rows] == [f"r{n}" for n in range(1, emitted + 1)]
    assert (await audit_log.verify()).ok


async def test_a_store_that_cannot_write_keeps_everything_and_moves_no_head(audit_log: AuditLog) -> None:
    """The INSERT fails after the head was locked and read: nothing of the batch stays, and the retry fits on."""
    store = audit_log.store
    writer = writer_for(audit_log, batch_size=100)
    for index in range(1, 51):
        writer.emit(plain(index))
    await writer.flush()
    async with store.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    for index in range(51, 301):
        writer.emit(plain(index))
    with pytest.raises(StoreUnavailable) as caught:
        await writer.flush()
    assert isinstance(caught.value.__cause__, OperationalError | ProgrammingError)
    assert not is_record_fault(caught.value.__cause__)
    assert (writer.pending, writer.written, writer.quarantined, writer.dropped) == (250, 50, 0, 0)

    async with store.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    await writer.flush()
    assert (writer.pending, writer.written) == (0, 300)
    rows = await stored_rows(store)
    assert [row.emit_seq for row in rows] == list(range(1, 301)) == [row.seq for row in rows]
    assert (await audit_log.verify()).ok


async def test_a_direct_write_and_a_writer_s_last_mark(audit_log: AuditLog) -> None:
    await audit_log.write([plain(1), plain(2)])  # no writer: no emission numbers
    await audit_log.write_batch([Emitted(1, plain(3))], WriterMark("b" * 32, 1, 0))
    await audit_log.write_batch([], WriterMark("b" * 32, 2, 1, closed=True))  # number 2 was dropped
    rows = await stored_rows(audit_log.store)
    assert [(row.writer_id, row.emit_seq) for row in rows] == [(None, None), (None, None), ("b" * 32, 1)]
    report = await audit_log.verify()
    assert not report.ok and report.emissions is not None and report.emissions.dropped == 1
    assert [(m.first, m.last) for m in report.emissions.missing] == [(2, 2)]


async def test_costs_and_times_read_back_as_written(audit_log: AuditLog) -> None:
    record = AuditRecord(
        "r1", "llm", "x", "allow", 200, 2.5, cost_usd=Decimal("12.3456789012"), ts=START + timedelta(microseconds=7)
    )
    await audit_log.write([record])
    (row,) = await stored_rows(audit_log.store)
    assert (row.cost_usd, row.ts, row.latency_ms) == (Decimal("12.3456789012"), record.ts, 2.5)


async def test_a_big_batch_is_prepared_in_slices_with_the_loop_let_go_between(audit_log: AuditLog) -> None:
    """Requests keep being served while a batch is prepared: another task runs between slices, and the slices
    together are the batch prepared in one go."""
    appender = ChainAppender(audit_log.store)
    records = [(varied(index), index) for index in range(1, 3 * PREPARE_SLICE + 2)]
    ticks = 0

    async def other_request() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_request())
    await asyncio.sleep(0)
    try:
        started = ticks
        prepared = await appender._prepare(records, "w" * 32)
        ran_between = ticks - started
    finally:
        task.cancel()
    whole = AuditRowBinder(audit_log.store.engine.dialect).prepare(records, "w" * 32)
    assert (prepared.bodies, prepared.values) == (whole.bodies, whole.values)
    assert ran_between >= 3  # one turn of the other task per slice after the first


async def test_a_record_no_column_takes_in_a_later_slice_fails_before_any_io(audit_log: AuditLog) -> None:
    unbindable = AuditRecord("bad", "llm", "x", "allow", 200, 1.0, details={"x": object()}, ts=START)
    records: list[tuple[AuditRecord, int | None]] = [(plain(index), index) for index in range(1, 2 * PREPARE_SLICE)]
    records.append((unbindable, 2 * PREPARE_SLICE))
    with pytest.raises(StatementError) as caught:
        await ChainAppender(audit_log.store).append(records, WriterMark("w" * 32, len(records), 0))
    assert is_record_fault(caught.value)
    assert await stored_rows(audit_log.store) == []


def tool_call(index: int) -> AuditRecord:
    """A tool call's record: no tokens, no cost, no reason, no team or customer."""
    return AuditRecord(f"t{index}", "tool_call", "docs/search", "allow", 200, 0.5, key_id="k1", ts=START)


async def test_columns_empty_in_a_whole_run_are_stored_as_the_orm_stores_them(audit_log: AuditLog) -> None:
    """Runs of 8 and 4 rows: the first all tool calls (their empty columns written as NULL in the statement), the
    second with an LLM call among them (only what all four leave empty is); the rows are the ORM's, the chain holds."""
    records = [tool_call(index) for index in range(1, 11)] + [plain(11), tool_call(12)]
    await audit_log.write_batch([Emitted(n, r) for n, r in enumerate(records, 1)], WriterMark("a" * 32, 12, 0))
    assert (await audit_log.verify()).ok
    expected: list[dict[str, Any]] = [
        {**r.as_row(), "writer_id": "a" * 32, "emit_seq": n, "seq": 1000 + n, "prev_hash": "-", "hash": "-"}
        for n, r in enumerate(records, 1)
    ]
    async with audit_log.store.writing() as session:
        await session.execute(insert(AuditRow), expected)
    columns = ", ".join(STORED)
    async with audit_log.store.engine.connect() as connection:
        raw = (await connection.exec_driver_sql(f"SELECT {columns} FROM audit_events ORDER BY seq")).all()
    assert len(raw) == 24 and raw[:12] == raw[12:]


class Statements:
    """A cursor that notes the SQL it is given (as written, before its values are bound)."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.cursor = cursor
        self.seen: list[str] = []

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        self.seen.append(sql)
        return self.cursor.execute(sql, parameters)


def test_a_run_s_empty_columns_are_written_null_in_its_statement() -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute(f"CREATE TABLE audit_events ({', '.join(COLUMNS)})")
    cursor = Statements(connection.cursor())
    width = len(COLUMNS)
    rows = [tuple(None if position in (9, 12) else f"v{n}.{position}" for position in range(width)) for n in range(4)]
    rows[1] = rows[1][:12] + ("set",) + rows[1][13:]  # column 12 is empty in three rows of four only
    insert_nulls_written(Transaction(connection, cursor, "qmark", True), rows)
    (written,) = cursor.seen
    assert written.count("NULL") == 4 and written.count("?") == 4 * (width - 1)  # column 9 only, in each row
    assert connection.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_events").fetchall() == rows
