"""Audit writer under poison: how many emitted records reach the store when some of them cannot be stored as they are.

N records go straight into a writer wired as the gateway wires it (past the edge that would normally clean them),
a fraction of them poisoned: a lone surrogate, a NUL, a request id or target longer than its column, details that
are not JSON, a NaN latency, an out-of-range token count or cost. Each store rejects its own subset of these; the
writer must quarantine exactly those and write everything else, with the chain still verifying.

Run: `.venv/bin/python bench/writer_faults.py [--records 10000] [--poison 0.01] [--store sqlite|postgresql]`
(PostgreSQL: the server on 127.0.0.1:5432, a throwaway schema). Nothing here is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from toolpolicy import quarantine
from toolpolicy.audit import AuditRecord
from toolpolicy.batching import BatchWriter
from toolpolicy.store import Store
from toolpolicy.store.audit_log import AuditLog
from toolpolicy.store.faults import is_record_fault
from toolpolicy.store.schema import AuditRow

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TS = datetime(2026, 11, 25, tzinfo=UTC)
POISONS: list[dict[str, Any]] = [
    {"target": "openai/\ud800"},
    {"target": "docs/a\x00b"},
    {"request_id": "x" * 100},
    {"target": "t" * 600},
    {"details": {"x": object()}},
    {"latency_ms": float("nan")},
    {"tokens_in": 2**40},
    {"cost_usd": Decimal("1e15")},
]


def records(count: int, share: float, seed: int) -> tuple[list[AuditRecord], int]:
    rng = random.Random(seed)
    made, poisoned = [], 0
    for index in range(count):
        values: dict[str, Any] = {"request_id": f"r{index}", "kind": "llm", "target": "openai/gpt-4o-mini"}
        values.update(decision="allow", status=200, latency_ms=1.0, ts=TS)
        if rng.random() < share:
            values.update(rng.choice(POISONS))
            poisoned += 1
        made.append(AuditRecord(**values))
    return made, poisoned


async def open_store(kind: str) -> tuple[Store, Any]:
    if kind == "sqlite":
        directory = tempfile.TemporaryDirectory()
        return Store.open(f"sqlite+aiosqlite:///{directory.name}/bench.db"), directory
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(POSTGRES.replace("postgresql+asyncpg", "postgresql"))
    await connection.execute(f'CREATE SCHEMA "{schema}"')
    await connection.close()
    return Store.open(POSTGRES, connect_args={"server_settings": {"search_path": schema}}), schema


async def drop_schema(schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES.replace("postgresql+asyncpg", "postgresql"))
    await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await connection.close()


async def run(kind: str, count: int, share: float, seed: int) -> None:
    store, handle = await open_store(kind)
    try:
        await store.migrate()
        log = AuditLog(store)
        writer = BatchWriter[AuditRecord](
            log.write_batch, name="audit", is_record_fault=is_record_fault, quarantine=quarantine.audit_record
        )
        batch, poisoned = records(count, share, seed)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for record in batch:
            writer.emit(record)
        await writer.flush()
        elapsed = loop.time() - started
        async with store.session() as session:
            rows = (await session.execute(select(func.count()).select_from(AuditRow))).scalar_one()
        report = await log.verify()
        print(
            f"{kind}: emitted {writer.emitted} ({poisoned} poisoned), rows in store {rows}, written {writer.written}, "
            f"quarantined {writer.quarantined}, dropped {writer.dropped}, pending {writer.pending}; "
            f"verify {'OK' if report.ok else 'FAILED: ' + str(report.problem)}; {elapsed:.2f}s"
        )
    finally:
        await store.close()
        if isinstance(handle, str):
            await drop_schema(handle)
        else:
            handle.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--poison", type=float, default=0.01, help="share of poisoned records")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for kind in args.store or ["sqlite", "postgresql"]:
        asyncio.run(run(kind, args.records, args.poison, args.seed))


if __name__ == "__main__":
    main()
