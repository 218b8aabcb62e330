from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, update

from tests.conftest import StoreTarget
from toolpolicy.audit import AuditRecord
from toolpolicy.audit_export import export_lines, parse_csv_export
from toolpolicy.store import Store
from toolpolicy.store.audit_log import AuditLog, AuditQuery, record_hash
from toolpolicy.store.schema import AuditRow

pytestmark = pytest.mark.anyio
START = datetime(2026, 11, 1, tzinfo=UTC)


def record(index: int, **fields: object) -> AuditRecord:
    values: dict[str, object] = {
        "request_id": f"r{index}",
        "kind": "tool_call",
        "target": "docs/search",
        "decision": "allow",
        "status": 200,
        "latency_ms": 1.25 + index,
        "key_name": "bot",
        "cost_usd": Decimal("0.0012345"),
        "details": {"server": "docs", "tool": "search", "arguments_sha256": "ab" * 32},
        "ts": START + timedelta(hours=index),
    }
    values.update(fields)
    return AuditRecord(**values)  # type: ignore[arg-type]


async def test_an_untouched_chain_verifies(audit_log: AuditLog) -> None:
    assert (await audit_log.verify()).ok  # empty
    for batch in range(3):
        await audit_log.write([record(batch * 4 + i) for i in range(4)])
    report = await audit_log.verify()
    assert report.ok and report.checked == 12 and (report.first_seq, report.last_seq) == (1, 12)


async def test_an_edited_record_is_named(audit_log: AuditLog) -> None:
    await audit_log.write([record(i) for i in range(6)])
    async with audit_log.store.session() as session, session.begin():
        await session.execute(update(AuditRow).where(AuditRow.seq == 4).values(decision="deny"))
    report = await audit_log.verify()
    assert not report.ok and report.broken_seq == 4 and "content" in (report.problem or "")


async def test_a_deleted_record_is_named(audit_log: AuditLog) -> None:
    await audit_log.write([record(i) for i in range(6)])
    async with audit_log.store.session() as session, session.begin():
        await session.execute(delete(AuditRow).where(AuditRow.seq == 3))
    report = await audit_log.verify()
    assert not report.ok and report.broken_seq == 3 and "missing" in (report.problem or "")


async def test_a_deleted_tail_is_detected(audit_log: AuditLog) -> None:
    await audit_log.write([record(i) for i in range(6)])
    async with audit_log.store.session() as session, session.begin():
        await session.execute(delete(AuditRow).where(AuditRow.seq >= 5))
    report = await audit_log.verify()
    assert not report.ok and report.broken_seq == 5


async def test_a_rehashed_forgery_still_breaks_the_link(audit_log: AuditLog) -> None:
    await audit_log.write([record(i) for i in range(4)])
    async with audit_log.store.session() as session, session.begin():
        target = (await session.execute(AuditRow.__table__.select().where(AuditRow.seq == 2))).mappings().one()
        forged = {**dict(target), "decision": "deny"}
        new_hash = record_hash(forged["prev_hash"], 2, forged)
        await session.execute(update(AuditRow).where(AuditRow.seq == 2).values(decision="deny", hash=new_hash))
    report = await audit_log.verify()
    assert not report.ok and report.broken_seq == 3  # the next record still names the old hash


async def test_concurrent_writers_form_one_chain(store_target: StoreTarget) -> None:
    stores = [Store.open(store_target.url, connect_args=store_target.connect_args) for _ in range(2)]
    await stores[0].migrate()
    try:
        logs = [AuditLog(store) for store in stores]
        await asyncio.gather(*(logs[i % 2].write([record(i * 10 + j) for j in range(5)]) for i in range(10)))
        report = await logs[0].verify()
        assert report.ok and report.checked == 50
    finally:
        for store in stores:
            await store.close()


async def test_pruning_keeps_the_rest_verifiable(audit_log: AuditLog) -> None:
    await audit_log.write([record(i) for i in range(10)])
    now = START + timedelta(days=1, hours=6)  # records 0..5 are older than a day
    assert await audit_log.prune(1, now=now) == 6
    report = await audit_log.verify()
    assert report.ok and (report.first_seq, report.last_seq, report.checked) == (7, 10, 4)
    assert await audit_log.prune(1, now=now) == 0
    await audit_log.write([record(20)])
    assert (await audit_log.verify()).ok


async def test_exports_round_trip(audit_log: AuditLog) -> None:
    await audit_log.write([record(i, reason='x,"y"' if i == 1 else None) for i in range(5)])
    window = AuditQuery(since=START + timedelta(hours=1), until=START + timedelta(hours=4))
    jsonl = "".join([line async for line in export_lines(audit_log.export(window), "jsonl")])
    records = [json.loads(line) for line in jsonl.splitlines()]
    assert [r["request_id"] for r in records] == ["r1", "r2", "r3"]
    assert records[0]["reason"] == 'x,"y"' and records[0]["details"]["tool"] == "search"
    assert all(len(r["hash"]) == 64 for r in records)

    text = "".join([line async for line in export_lines(audit_log.export(window), "csv")])
    rows = parse_csv_export(text)
    assert [row["request_id"] for row in rows] == ["r1", "r2", "r3"]
    assert rows[0]["reason"] == 'x,"y"' and rows[0]["details"] == records[0]["details"]
    assert [row["hash"] for row in rows] == [r["hash"] for r in records]


async def test_export_pages_through_large_logs(audit_log: AuditLog) -> None:
    await audit_log.write([record(i) for i in range(25)])
    exported = [r async for r in audit_log.export(AuditQuery(), page_size=7)]
    assert [r["id"] for r in exported] == list(range(1, 26))
