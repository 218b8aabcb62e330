"""`isthmus audit verify` reports records emitted but never written, quarantined ones, and edits, separately."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from isthmus.cli import main
from toolpolicy import quarantine
from toolpolicy.audit import AuditRecord
from toolpolicy.batching import BatchWriter
from toolpolicy.store import Store
from toolpolicy.store.audit_log import AuditLog
from toolpolicy.store.faults import is_record_fault

START = datetime(2026, 11, 1, tzinfo=UTC)


def record(index: int, target: str = "openai/gpt-4o") -> AuditRecord:
    return AuditRecord(f"r{index}", "llm", target, "allow", 200, 1.0, ts=START + timedelta(minutes=index))


def write(database: Path, records: list[AuditRecord], *, max_buffer: int = 100, close: bool = True) -> None:
    """Emit `records` through a writer; with a small `max_buffer` the oldest are dropped before the first flush."""

    async def run() -> None:
        store = Store.open(f"sqlite+aiosqlite:///{database}")
        await store.migrate()
        log = AuditLog(store)
        writer = BatchWriter[AuditRecord](
            log.write_batch,
            name="audit",
            max_buffer=max_buffer,
            is_record_fault=is_record_fault,
            quarantine=quarantine.audit_record,
        )
        for item in records:
            writer.emit(item)
        await writer.flush()
        if close:
            await writer.aclose()
        await store.close()

    asyncio.run(run())


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "isthmus.yaml"
    path.write_text(f"store: sqlite+aiosqlite:///{tmp_path / 'gw.db'}\n")
    return path


def verify(config: Path) -> int:
    return main(["audit", "verify", "--config", str(config)])


def test_quarantined_records_count_as_written(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(config.parent / "gw.db", [record(0), record(1, "openai/\ud800"), record(2)])
    assert verify(config) == 0
    out = capsys.readouterr().out
    assert "audit chain OK: 3 records" in out and "1 writer(s), 1 quarantined record(s)" in out


def test_records_dropped_before_they_were_written_are_missing(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(config.parent / "gw.db", [record(i) for i in range(8)], max_buffer=5)  # 1..3 dropped, 4..8 written
    assert verify(config) == 1
    captured = capsys.readouterr()
    assert "audit chain OK: 5 records" in captured.out  # the chain alone cannot see them
    assert "MISSING" in captured.err and "emission 1..3 (3 record(s) emitted but never written)" in captured.err


def test_a_crashed_writer_s_tail_is_reported_unconfirmed(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = config.parent / "gw.db"
    write(database, [record(0), record(1)], close=False)  # it never says it stopped
    with sqlite3.connect(database) as db:  # its last report: 4 emitted, 2 written
        db.execute("UPDATE audit_writers SET emitted = 4")
    assert verify(config) == 0
    assert "unconfirmed: writer" in capsys.readouterr().err


def test_a_deleted_record_breaks_the_chain(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = config.parent / "gw.db"
    write(database, [record(i) for i in range(5)])
    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM audit_events WHERE seq = 2")
    assert verify(config) == 1
    assert "BROKEN at record 2: record 2 is missing" in capsys.readouterr().err
