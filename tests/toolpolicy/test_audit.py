from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from toolpolicy.audit import AuditRecord, AuditWriter
from toolpolicy.batching import Emitted, WriterMark
from toolpolicy.errors import InvalidRequest
from toolpolicy.store.audit_log import AuditLog, AuditQuery

pytestmark = pytest.mark.anyio


def record(index: int, **fields: object) -> AuditRecord:
    values: dict[str, object] = {
        "request_id": f"r{index}",
        "kind": "authorize",
        "target": "openai/gpt-4o-mini",
        "decision": "allow",
        "status": 200,
        "latency_ms": 0.5,
        "key_name": "bot",
        "team": "support",
        "customer": "acme",
    }
    values.update(fields)
    return AuditRecord(**values)  # type: ignore[arg-type]


class Sink:
    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[AuditRecord]] = []
        self.failures = failures

    async def __call__(self, batch: list[Emitted[AuditRecord]], mark: WriterMark) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store down")
        if batch:
            self.batches.append([emitted.item for emitted in batch])


async def test_records_are_written_in_batches_off_the_hot_path() -> None:
    sink = Sink()
    writer = AuditWriter(sink, name="audit", batch_size=10, flush_interval=60)
    writer.start()
    for index in range(25):
        writer.emit(record(index))
    assert sink.batches == []  # emit never writes
    for _ in range(100):
        if sum(map(len, sink.batches)) >= 20:
            break
        await asyncio.sleep(0.01)
    await writer.aclose()
    assert [len(batch) for batch in sink.batches] == [10, 10, 5]
    assert [r.request_id for batch in sink.batches for r in batch] == [f"r{i}" for i in range(25)]


async def test_close_flushes_everything_pending() -> None:
    sink = Sink()
    writer = AuditWriter(sink, name="audit", batch_size=1000, flush_interval=60)
    writer.start()
    for index in range(3):
        writer.emit(record(index))
    await writer.aclose()
    assert [len(batch) for batch in sink.batches] == [3]


async def test_a_failed_write_keeps_its_records_for_the_next_attempt() -> None:
    sink = Sink(failures=1)
    writer = AuditWriter(sink, name="audit", batch_size=100, flush_interval=60)
    writer.emit(record(1))
    with pytest.raises(ConnectionError):
        await writer.flush()
    assert writer.pending == 1
    await writer.flush()
    assert writer.pending == 0 and writer.written == 1


async def test_an_overfull_buffer_drops_the_oldest_and_counts_them() -> None:
    writer = AuditWriter(Sink(), name="audit", batch_size=100, flush_interval=60, max_buffer=5)
    for index in range(8):
        writer.emit(record(index))
    assert writer.pending == 5 and writer.dropped == 3


async def test_queries_filter_and_paginate_newest_first(audit_log: AuditLog) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    await audit_log.write(
        [
            record(i, ts=start + timedelta(minutes=i), decision="deny" if i % 3 == 0 else "allow", key_name=f"k{i % 2}")
            for i in range(12)
        ]
    )
    everything, cursor = await audit_log.query(AuditQuery(limit=100))
    assert len(everything) == 12 and cursor is None
    assert everything[0]["request_id"] == "r11"

    denied, _ = await audit_log.query(AuditQuery(decision="deny"))
    assert [r["request_id"] for r in denied] == ["r9", "r6", "r3", "r0"]
    assert (await audit_log.query(AuditQuery(key="k1", decision="deny")))[0][0]["request_id"] == "r9"

    window_query = AuditQuery(since=start + timedelta(minutes=3), until=start + timedelta(minutes=6))
    window, _ = await audit_log.query(window_query)
    assert [r["request_id"] for r in window] == ["r5", "r4", "r3"]

    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await audit_log.query(AuditQuery(limit=5, cursor=cursor))
        seen += [r["request_id"] for r in page]
        if cursor is None:
            break
    assert seen == [f"r{i}" for i in reversed(range(12))]


async def test_a_forged_cursor_is_a_clear_error(audit_log: AuditLog) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        await audit_log.query(AuditQuery(cursor="'; drop table"))
