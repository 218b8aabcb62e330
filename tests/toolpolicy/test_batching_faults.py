"""The writers under faults, on a real store: records the store rejects, and a store that is down then back."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from tests.conftest import StoreTarget
from tests.toolpolicy.limits_support import running, settings
from toolpolicy.audit import AuditRecord
from toolpolicy.batching import BatchWriter, Emitted, StoreUnavailable, WriterMark
from toolpolicy.quarantine import QUARANTINED_KIND
from toolpolicy.runtime import Governance
from toolpolicy.store.audit_log import AuditLog
from toolpolicy.store.faults import is_record_fault
from toolpolicy.store.ledger import SpendEntry, SpendScope
from toolpolicy.store.schema import AuditRow

pytestmark = pytest.mark.anyio
TS = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def good(index: int) -> AuditRecord:
    return AuditRecord(f"good-{index}", "llm", "openai/gpt-4o-mini", "allow", 200, 1.5, key_name="bot", ts=TS)


def poisons(backend: str) -> list[AuditRecord]:
    """Records the store rejects as they are (each store rejects its own set)."""
    base = good(0)
    rejected_everywhere = [
        AuditRecord("p-surrogate", "llm", "openai/\ud800", "allow", 200, 1.0, ts=TS),
        AuditRecord("p-unserialisable", "llm", "x", "deny", 403, 1.0, details={"x": object()}, ts=TS),
    ]
    if backend == "sqlite":
        return [*rejected_everywhere, AuditRecord("p-nan", "llm", "x", "allow", 200, float("nan"), ts=TS)]
    return [
        *rejected_everywhere,
        AuditRecord("p-nul", "tool_call", "docs/a\x00b", "allow", 200, 1.0, ts=TS),
        AuditRecord("x" * 100, "llm", base.target, "allow", 200, 1.0, ts=TS),
        AuditRecord("p-long-target", "llm", "t" * 600, "allow", 200, 1.0, ts=TS),
        AuditRecord("p-tokens", "llm", "x", "allow", 200, 1.0, tokens_in=2**40, ts=TS),
        AuditRecord("p-cost", "llm", "x", "allow", 200, 1.0, cost_usd=Decimal("1e15"), ts=TS),
    ]


def quarantined_metric(governance: Governance, writer: str) -> float:
    value = governance.metrics.registry.get_sample_value("isthmus_writer_quarantined_total", {"writer": writer})
    return value or 0.0


@pytest.fixture
async def governance(store_target: StoreTarget) -> AsyncIterator[Governance]:
    async with running(settings(store_target.url), store_target.connect_args) as started:
        yield started


async def test_poisoned_records_are_quarantined_and_the_rest_written(
    governance: Governance, store_target: StoreTarget
) -> None:
    writer = governance.audit.writer  # straight to the writer: past the edge that would have cleaned them
    bad = poisons(store_target.backend)
    mixed: list[AuditRecord] = [good(i) for i in range(120)]
    for record in bad:
        mixed.insert(random.Random(len(mixed)).randrange(len(mixed)), record)
    for record in mixed:
        writer.emit(record)
    await writer.flush()

    assert writer.pending == 0 and writer.dropped == 0
    assert writer.quarantined == len(bad) and writer.written == len(mixed)
    assert quarantined_metric(governance, "audit") == len(bad)
    async with governance.store.session() as session:
        rows = (await session.execute(select(AuditRow).order_by(AuditRow.seq))).scalars().all()
    assert [row.emit_seq for row in rows] == list(range(1, len(mixed) + 1))  # every emission, in order, once
    written_good = [row.request_id for row in rows if row.kind != QUARANTINED_KIND]
    assert written_good == [record.request_id for record in mixed if all(record is not b for b in bad)]
    quarantined = [row for row in rows if row.kind == QUARANTINED_KIND]
    assert len(quarantined) == len(bad)
    assert all(set(row.details) == {"quarantine"} for row in quarantined)
    assert any("\\ud800" in row.details["quarantine"]["record"] for row in quarantined)  # escaped, not lost

    report = await governance.audit_log.verify()
    assert report.ok and report.emissions is not None
    assert report.emissions.quarantined == len(bad) and not report.emissions.missing

    writer.emit(good(1000))  # the writer carries on
    await writer.flush()
    assert writer.written == len(mixed) + 1 and (await governance.audit_log.verify()).ok


async def test_a_poisoned_spend_entry_keeps_its_cost(governance: Governance, store_target: StoreTarget) -> None:
    alpha = await governance.keys.resolve("isk-alpha")
    entries = [
        SpendEntry("r1", "mock/model", Decimal("0.25"), key_id=alpha.key_id, created_at=TS),
        SpendEntry("x" * 100, "mock/\ud800", Decimal("0.5"), key_id=alpha.key_id, created_at=TS),
        SpendEntry("r3", "mock/model", Decimal("0.125"), key_id=alpha.key_id, created_at=TS),
    ]
    for entry in entries:
        governance.spend.emit(entry)
    await governance.spend.flush()
    assert governance.spend.pending == 0 and governance.spend.quarantined == 1
    assert quarantined_metric(governance, "spend") == 1
    assert await governance.ledger.total(SpendScope(key_id=alpha.key_id), TS) == Decimal("0.875")


class Outage:
    """The real store's writes, failing as an unreachable store does while `down`."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.down = True
        self.attempts = 0

    async def __call__(self, batch: list[Emitted[AuditRecord]], mark: WriterMark) -> None:
        self.attempts += 1
        if self.down:
            raise OperationalError("INSERT INTO audit_events", {}, ConnectionRefusedError("connection refused"))
        await self.log.write_batch(batch, mark)


async def test_a_store_down_then_back_loses_nothing(governance: Governance) -> None:
    outage = Outage(governance.audit_log)
    writer = BatchWriter[AuditRecord](
        outage,
        name="audit",
        batch_size=4,
        flush_interval=0.01,
        is_record_fault=is_record_fault,
        retry_initial=0.001,
        retry_max=0.01,
    )
    for index in range(10):
        writer.emit(good(index))
    with pytest.raises(StoreUnavailable):
        await writer.flush()
    assert writer.pending == 10 and writer.quarantined == 0  # a store that is down is not a bad record

    writer.start()
    while outage.attempts < 5:  # the background task keeps trying
        await asyncio.sleep(0.005)
    for index in range(10, 15):
        writer.emit(good(index))
    assert writer.pending == 15 and writer.written == 0
    outage.down = False
    while writer.pending:
        await asyncio.sleep(0.005)
    await writer.aclose()

    assert (writer.written, writer.dropped, writer.quarantined) == (15, 0, 0)
    async with governance.store.session() as session:
        ids = (await session.execute(select(AuditRow.request_id).order_by(AuditRow.seq))).scalars().all()
    assert ids == [f"good-{index}" for index in range(15)]
    report = await governance.audit_log.verify()
    assert report.ok and report.emissions is not None and not report.emissions.unconfirmed


async def test_an_overflowing_buffer_counts_and_reports_what_it_drops(governance: Governance) -> None:
    outage = Outage(governance.audit_log)
    dropped: list[int] = []
    writer = BatchWriter[AuditRecord](
        outage, name="audit", max_buffer=5, is_record_fault=is_record_fault, on_drop=dropped.append
    )
    for index in range(8):
        writer.emit(good(index))
    assert (writer.pending, writer.dropped, sum(dropped)) == (5, 3, 3)
    outage.down = False
    await writer.flush()
    async with governance.store.session() as session:
        count = (await session.execute(select(func.count()).select_from(AuditRow))).scalar_one()
    assert count == 5
    report = await governance.audit_log.verify()
    assert not report.ok and report.emissions is not None
    assert [(gap.first, gap.last) for gap in report.emissions.missing] == [(1, 3)]


async def test_closing_never_cuts_a_write_in_half() -> None:
    """A write cancelled after its commit would be put back and written twice: close waits for it instead."""
    committed: list[int] = []
    acknowledged = asyncio.Event()
    entered = asyncio.Event()

    async def write(batch: list[Emitted[AuditRecord]], mark: WriterMark) -> None:
        committed.extend(emitted.number for emitted in batch)
        entered.set()
        await acknowledged.wait()  # committed, the answer still on its way

    writer = BatchWriter[AuditRecord](write, name="audit", batch_size=3, flush_interval=60)
    writer.start()
    for index in range(3):
        writer.emit(good(index))
    await entered.wait()
    assert writer.pending == 3  # in flight counts as pending until written
    closing = asyncio.create_task(writer.aclose())
    await asyncio.sleep(0)
    acknowledged.set()
    await closing
    assert committed == [1, 2, 3] and writer.written == 3 and writer.pending == 0
