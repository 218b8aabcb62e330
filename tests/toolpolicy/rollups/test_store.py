"""The rollup table on SQLite and PostgreSQL: batches add up, reads sum over hours, keys and targets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from tests.conftest import StoreTarget
from tests.toolpolicy.rollups.support import T0, record as base_record
from toolpolicy.audit import AuditRecord
from toolpolicy.batching import Emitted, WriterMark
from toolpolicy.rollups import RollupStore, Window, fold
from toolpolicy.rollups.store import FOLD_SLICE, MEASURES
from toolpolicy.store import Store
from toolpolicy.store.schema import RollupRow

pytestmark = pytest.mark.anyio
MARK = WriterMark("w", 0, 0)


def record(minutes: int = 0, **fields: object) -> AuditRecord:
    defaults: dict[str, object] = {"tokens_in": 3, "tokens_out": 2, "cost_usd": Decimal("0.5")}
    return base_record(**{**defaults, "ts": T0 + timedelta(minutes=minutes), **fields})


@pytest.fixture
async def rollups(store_target: StoreTarget) -> AsyncIterator[RollupStore]:
    store = Store.open(store_target.url, connect_args=store_target.connect_args)
    await store.migrate()
    try:
        yield RollupStore(store)
    finally:
        await store.close()


async def test_two_batches_for_the_same_hour_add_to_the_same_row(rollups: RollupStore) -> None:
    await rollups.write_batch([Emitted(1, record()), Emitted(2, record(5, status=500, latency_ms=400))], MARK)
    await rollups.write_batch([Emitted(3, record(30, latency_ms=900))], MARK)
    window = Window(T0, T0 + timedelta(hours=1))
    total = await rollups.total(window)
    assert (total.requests, total.errors, total.tokens_in, total.tokens_out) == (3, 1, 9, 6)
    assert total.cost_usd == Decimal("1.5")
    assert total.latency_sum_ms == pytest.approx(1305.0)
    assert sum(total.histogram) == 3
    assert total.percentile(0.5) is not None and total.percentile(0.5) > 200


async def test_series_has_one_entry_per_hour_with_traffic_and_leaves_other_kinds_out(rollups: RollupStore) -> None:
    await rollups.add(
        fold([record(), record(61), record(62, kind="tool_call", target="docs/search"), record(kind="guardrail")])
    )
    series = await rollups.series(Window(T0, T0 + timedelta(hours=3)))
    assert [(hour, totals.requests) for hour, totals in series.items()] == [(T0, 1), (T0 + timedelta(hours=1), 2)]
    guardrails = await rollups.total(Window(T0, T0 + timedelta(hours=3)), ("guardrail",))
    assert guardrails.guardrail_hits == 1


async def test_a_window_excludes_its_end_hour(rollups: RollupStore) -> None:
    await rollups.add(fold([record(), record(60)]))
    assert (await rollups.total(Window(T0, T0 + timedelta(hours=1)))).requests == 1


async def test_top_orders_by_requests_and_by_key_sums_each_named_key(rollups: RollupStore) -> None:
    await rollups.add(
        fold(
            [
                record(key_name="a"),
                record(key_name="b"),
                record(1, key_name="b", target="openai/gpt-4o-mini"),
                record(2, key_name="c"),
                record(3, key_name="c"),
                record(4, key_name="c"),
            ]
        )
    )
    window = Window(T0, T0 + timedelta(hours=1))
    top = await rollups.top("key_name", window, limit=2)
    assert [(name, totals.requests) for name, totals in top] == [("c", 3), ("b", 2)]
    models = await rollups.top("target", window, kinds=("llm",))
    assert [(name, totals.requests) for name, totals in models] == [("echo/echo-1", 5), ("openai/gpt-4o-mini", 1)]
    by_key = await rollups.by_key(["a", "b", "nobody"], window)
    assert {name: totals.requests for name, totals in by_key.items()} == {"a": 1, "b": 2}
    assert await rollups.by_key([], window) == {}


async def test_a_batch_of_more_groups_than_one_statement_holds_is_added_whole(rollups: RollupStore) -> None:
    # 600 keys x 3 grains: more rows than one SQLite statement's parameters allow, so several statements.
    batch = [record(index % 59, key_name=f"k{index:03d}", target=f"m{index % 7}") for index in range(600)]
    await rollups.write_batch([Emitted(n, r) for n, r in enumerate(batch, 1)], MARK)
    await rollups.write_batch([Emitted(n, r) for n, r in enumerate(batch, 601)], MARK)
    window = Window(T0, T0 + timedelta(hours=1))
    total = await rollups.total(window)
    assert (total.requests, total.tokens_in, total.cost_usd) == (1200, 3600, Decimal("600"))
    by_key = await rollups.by_key([f"k{index:03d}" for index in range(600)], window)
    assert len(by_key) == 600 and {totals.requests for totals in by_key.values()} == {2}
    models = await rollups.top("target", window)
    assert sorted((name, totals.requests) for name, totals in models) == [
        (f"m{index}", 2 * sum(1 for n in range(600) if n % 7 == index)) for index in range(7)
    ]


async def test_the_upserted_rows_are_what_sqlalchemy_s_own_upsert_stores(rollups: RollupStore) -> None:
    """Byte for byte (hours, costs, sums as each backend keeps them), after an insert and an add to every row."""
    batch = fold([record(3, cost_usd=Decimal("0.1234567891")), record(70, key_name="other", status=503)])
    await rollups.add(batch)
    await rollups.add(batch)
    insert = postgresql.insert if rollups.store.backend == "postgresql" else sqlite.insert
    statement = insert(RollupRow)
    upsert = statement.on_conflict_do_update(
        index_elements=["grain", "bucket", "kind", "key_name", "target"],
        set_={name: getattr(RollupRow, name) + statement.excluded[name] for name in MEASURES},
    )
    rows = []
    for group, totals in sorted(batch.items()):  # the same rows under grains 11-13
        row = {"grain": group.grain + 10, "bucket": group.bucket, "kind": group.kind, "key_name": group.key_name}
        row |= {"target": group.target, "requests": totals.requests, "errors": totals.errors}
        row |= {"latency_sum_ms": totals.latency_sum_ms, "tokens_in": totals.tokens_in}
        row |= {"tokens_out": totals.tokens_out, "cost_usd": totals.cost_usd, "cache_hits": totals.cache_hits}
        row |= {"guardrail_hits": totals.guardrail_hits}
        row |= {f"lat_{index:02d}": count for index, count in enumerate(totals.histogram)}
        rows.append(row)
    for _ in range(2):
        async with rollups.store.writing() as session:
            await session.execute(upsert, rows)
    columns = ", ".join(("bucket", "kind", "key_name", "target", *MEASURES))
    query = "SELECT {} FROM request_rollups WHERE {} ORDER BY grain, bucket, kind, key_name, target"
    async with rollups.store.engine.connect() as connection:
        ours = (await connection.execute(text(query.format(columns, "grain < 10")))).all()
        theirs = (await connection.execute(text(query.format(columns, "grain >= 10")))).all()
    assert len(ours) == 6 and ours == theirs


async def test_a_batch_of_many_slices_adds_every_record(rollups: RollupStore) -> None:
    """The writer folds a batch a slice at a time: every record lands, in its hour."""
    batch = [Emitted(index, record(index % 120, key_name=f"k{index % 5}")) for index in range(3 * FOLD_SLICE + 5)]
    await rollups.write_batch(batch, MARK)
    hours = await rollups.series(Window(T0, T0 + timedelta(hours=2)))
    assert [(totals.requests, totals.tokens_in, totals.cost_usd) for totals in hours.values()] == [
        (count, 3 * count, Decimal("0.5") * count)
        for count in (
            sum(1 for emitted in batch if emitted.item.ts < T0 + timedelta(hours=1)),
            sum(1 for emitted in batch if emitted.item.ts >= T0 + timedelta(hours=1)),
        )
    ]
    assert sum(sum(totals.histogram) for totals in hours.values()) == len(batch)
