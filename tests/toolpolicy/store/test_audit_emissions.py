"""`verify` beyond the chain: records a writer emitted that never reached the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from toolpolicy.audit import AuditRecord
from toolpolicy.batching import Emitted, WriterMark
from toolpolicy.store.audit_log import AuditLog, record_hash
from toolpolicy.store.schema import AuditChainRow, AuditRow

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 1, tzinfo=UTC)


def numbered(first: int, last: int) -> list[Emitted[AuditRecord]]:
    return [
        Emitted(n, AuditRecord(f"r{n}", "llm", "openai/gpt-4o", "allow", 200, 1.0, ts=START + timedelta(hours=n)))
        for n in range(first, last + 1)
    ]


async def test_writers_that_wrote_everything_verify(audit_log: AuditLog) -> None:
    await audit_log.write_batch(numbered(1, 3), WriterMark("a" * 32, 3, 0))
    await audit_log.write([numbered(9, 9)[0].item])  # a direct write: no emission number
    await audit_log.write_batch(numbered(1, 2), WriterMark("b" * 32, 2, 0))
    await audit_log.write_batch(numbered(4, 5), WriterMark("a" * 32, 5, 0))
    await audit_log.write_batch([], WriterMark("a" * 32, 5, 0, closed=True))
    report = await audit_log.verify()
    assert report.ok and report.checked == 8 and report.emissions is not None
    assert (report.emissions.writers, report.emissions.missing, report.emissions.unconfirmed) == (2, [], [])


async def test_a_record_emitted_between_two_written_ones_is_missing(audit_log: AuditLog) -> None:
    await audit_log.write_batch(numbered(1, 3), WriterMark("a" * 32, 3, 0))
    await audit_log.write_batch(numbered(6, 7), WriterMark("a" * 32, 7, 2))  # 4 and 5 never arrived
    report = await audit_log.verify()
    assert not report.ok and report.broken_seq is None and report.emissions is not None
    assert [(gap.first, gap.last) for gap in report.emissions.missing] == [(4, 5)]
    assert "2 record(s) emitted but never written" in (report.problem or "")


async def test_a_stopped_writer_s_lost_tail_is_missing_a_running_one_s_unconfirmed(audit_log: AuditLog) -> None:
    stopped, running = "s" * 32, "r" * 32
    await audit_log.write_batch(numbered(1, 4), WriterMark(stopped, 6, 0))
    await audit_log.write_batch([], WriterMark(stopped, 6, 2, closed=True))
    await audit_log.write_batch(numbered(1, 2), WriterMark(running, 5, 0))
    report = await audit_log.verify()
    assert not report.ok and report.emissions is not None
    assert [(m.writer_id, m.first, m.last) for m in report.emissions.missing] == [(stopped, 5, 6)]
    assert [(m.writer_id, m.first, m.last) for m in report.emissions.unconfirmed] == [(running, 3, 5)]


async def test_a_deleted_record_is_found_even_when_the_chain_is_rebuilt_around_it(audit_log: AuditLog) -> None:
    await audit_log.write_batch(numbered(1, 6), WriterMark("a" * 32, 6, 0))
    async with audit_log.store.writing() as session:
        await session.execute(delete(AuditRow).where(AuditRow.seq == 3))
        rows = (await session.execute(select(AuditRow).order_by(AuditRow.seq))).scalars().all()
        previous = "0" * 64
        for position, row in enumerate(rows, start=1):  # renumber and rehash: the chain itself is whole again
            fields = {name: getattr(row, name) for name in AuditRow.__table__.columns.keys()}
            digest = record_hash(previous, position, fields)
            await session.execute(
                update(AuditRow).where(AuditRow.id == row.id).values(seq=position, prev_hash=previous, hash=digest)
            )
            previous = digest
        await session.execute(update(AuditChainRow).values(last_seq=len(rows), last_hash=previous))
    report = await audit_log.verify()
    assert not report.ok and report.broken_seq is None and report.emissions is not None
    assert [(gap.first, gap.last) for gap in report.emissions.missing] == [(3, 3)]


async def test_retried_batches_are_counted_not_missing(audit_log: AuditLog) -> None:
    await audit_log.write_batch(numbered(1, 3), WriterMark("a" * 32, 3, 0))
    await audit_log.write_batch(numbered(3, 4), WriterMark("a" * 32, 4, 0))  # a commit whose answer was lost
    report = await audit_log.verify()
    assert report.ok and report.emissions is not None and report.emissions.duplicates == 1


async def test_pruning_leaves_no_false_gaps(audit_log: AuditLog) -> None:
    await audit_log.write_batch(numbered(1, 10), WriterMark("a" * 32, 10, 0))
    await audit_log.write_batch(numbered(1, 3), WriterMark("b" * 32, 3, 0))
    await audit_log.write_batch([], WriterMark("b" * 32, 3, 0, closed=True))
    assert await audit_log.prune(1, now=START + timedelta(days=1, hours=6)) == 5  # a's records 1..5 (b's are newer)
    report = await audit_log.verify()
    assert report.ok and report.emissions is not None and report.emissions.missing == []
