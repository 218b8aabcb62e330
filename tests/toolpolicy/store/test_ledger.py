"""The spend ledger's writes on SQLite and PostgreSQL: one driver call a batch, the rows Core's insert stores."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import StatementError

from toolpolicy.store import Store
from toolpolicy.store.faults import is_record_fault
from toolpolicy.store.ledger import BIND_SLICE, SpendEntry, SpendLedger, SpendScope
from toolpolicy.store.schema import SpendRow

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
STORED = ("created_at", "request_id", "key_id", "team_id", "customer_id", "provider", "target", "cost_usd")


def entry(index: int) -> SpendEntry:
    return SpendEntry(
        request_id=f"r{index}",
        target="openai/gpt-4o" if index % 2 else "docs/search",
        cost_usd=Decimal("0.0000012345") * (index + 1),
        key_id=f"k{index % 3}",
        team_id="t1" if index % 4 else None,
        customer_id="c1",
        provider="openai" if index % 2 else None,
        created_at=T0 + timedelta(microseconds=index * 1001),
    )


async def test_the_rows_are_what_core_s_insert_stores(migrated_store: Store) -> None:
    entries = [entry(index) for index in range(12)]
    await SpendLedger(migrated_store).write(entries)
    rows = [{name: getattr(item, name) for name in STORED} for item in entries]
    async with migrated_store.writing() as session:
        await (await session.connection()).execute(insert(SpendRow), rows)  # the path the ledger used to take
    async with migrated_store.engine.connect() as connection:
        raw = (await connection.execute(text(f"SELECT {', '.join(STORED)} FROM spend_ledger ORDER BY id"))).all()
    assert len(raw) == 24 and raw[:12] == raw[12:]


async def test_entries_off_the_usual_types_are_stored_as_core_stores_them(migrated_store: Store) -> None:
    """A cost that is not a Decimal and a time not in UTC go through the columns' processors, beside usual rows."""
    usual = [entry(index) for index in range(4)]
    unusual = [
        replace(entry(10), cost_usd=3),  # type: ignore[arg-type]  # an int, as a caller might pass
        replace(entry(11), created_at=(T0 + timedelta(seconds=5)).astimezone(timezone(timedelta(hours=2)))),
    ]
    entries = [usual[0], *unusual, *usual[1:]]
    await SpendLedger(migrated_store).write(entries)
    rows = [{name: getattr(item, name) for name in STORED} for item in entries]
    async with migrated_store.writing() as session:
        await (await session.connection()).execute(insert(SpendRow), rows)
    async with migrated_store.engine.connect() as connection:
        raw = (await connection.execute(text(f"SELECT {', '.join(STORED)} FROM spend_ledger ORDER BY id"))).all()
    assert len(raw) == 12 and raw[:6] == raw[6:]
    assert raw[2][0] == raw[8][0] and str(raw[2][0]).startswith("2026-11-25 12:00:05")


async def test_a_batch_larger_than_one_statement_holds_is_written_whole(migrated_store: Store) -> None:
    ledger = SpendLedger(migrated_store)
    entries = [entry(index) for index in range(5000)]  # 40,000 values: several statements on SQLite
    await ledger.write(entries)
    await ledger.write([])
    total = await ledger.total(SpendScope(), T0)
    assert total == sum((item.cost_usd for item in entries), Decimal(0))
    assert await ledger.total(SpendScope(key_id="k1"), T0) == sum(
        (item.cost_usd for item in entries if item.key_id == "k1"), Decimal(0)
    )


async def test_an_entry_no_column_takes_in_a_later_slice_fails_before_any_io(migrated_store: Store) -> None:
    ledger = SpendLedger(migrated_store)
    entries = [entry(index) for index in range(2 * BIND_SLICE)]
    entries.append(replace(entry(999), created_at=datetime(2026, 11, 25, 12, 0)))  # naive: no zone to store it in
    with pytest.raises(StatementError) as caught:
        await ledger.write(entries)
    assert is_record_fault(caught.value) and "r999" in str(caught.value)
    assert await ledger.total(SpendScope(), T0) == 0
