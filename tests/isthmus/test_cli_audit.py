"""`isthmus audit verify|export|prune` against a store the test fills and then tampers with."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from isthmus.cli import main
from toolpolicy.audit import AuditRecord
from toolpolicy.store import Store
from toolpolicy.store.audit_log import AuditLog

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    database = tmp_path / "gw.db"

    async def fill() -> None:
        store = Store.open(f"sqlite+aiosqlite:///{database}")
        await store.migrate()
        records = [
            AuditRecord(f"r{i}", "llm", "openai/gpt-4o", "allow", 200, 1.0, ts=START + timedelta(days=i))
            for i in range(5)
        ]
        await AuditLog(store).write(records)
        await store.close()

    asyncio.run(fill())
    path = tmp_path / "isthmus.yaml"
    path.write_text(f"store: sqlite+aiosqlite:///{database}\n")
    return path


def test_verify_passes_then_names_the_tampered_record(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert "audit chain OK: 5 records" in capsys.readouterr().out
    with sqlite3.connect(config.parent / "gw.db") as db:
        db.execute("UPDATE audit_events SET status = 500 WHERE seq = 2")
    assert main(["audit", "verify", "--config", str(config)]) == 1
    assert "BROKEN at record 2" in capsys.readouterr().err


def test_export_filters_by_time(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    since, until = "2026-11-02T00:00:00Z", "2026-11-04T00:00:00"
    assert main(["audit", "export", "--config", str(config), "--since", since, "--until", until]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["request_id"] for line in lines] == ["r1", "r2"]
    assert main(["audit", "export", "--config", str(config), "--since", "yesterday"]) == 1
    assert "--since" in capsys.readouterr().err


def test_prune_keeps_the_chain_verifiable(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "prune", "--config", str(config), "--days", "1"]) == 0
    assert "pruned 5 records" in capsys.readouterr().out
    assert main(["audit", "verify", "--config", str(config)]) == 0
