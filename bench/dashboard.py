"""Dashboard benchmark: how long the overview's rollup reads take as the recorded traffic grows.

Offline, on an embedded SQLite store in a temporary folder: a million synthetic requests (50 keys, 20 models, 30
days, latencies and tokens from a fixed seed) are folded into the rollups in batches of 200 (the gateway's `rollups`
writer takes what one flush interval brought, up to 10,000 records, so its batches are this size or larger);
then each read the overview makes for 24 hours and for 30 days is timed (median
of 5). The audit trail is not written: the overview never reads it.

Run: `.venv/bin/python bench/dashboard.py [requests]`; prints a table.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from toolpolicy.audit import AuditRecord
from toolpolicy.rollups import RollupStore, Window, fold
from toolpolicy.store import Store

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
BATCH = 200


def records(count: int, seed: int = 7) -> list[AuditRecord]:
    rng = random.Random(seed)
    span = 30 * 86400
    return [
        AuditRecord(
            request_id=f"r{index}",
            kind="llm" if rng.random() < 0.8 else "tool_call",
            target=f"provider/model-{rng.randrange(20)}",
            decision="allow",
            status=200 if rng.random() < 0.97 else 502,
            latency_ms=rng.lognormvariate(5, 1),
            key_name=f"key-{rng.randrange(50)}",
            tokens_in=rng.randrange(10, 2000),
            tokens_out=rng.randrange(1, 800),
            cost_usd=Decimal(rng.randrange(1, 5000)) / 1_000_000,
            ts=NOW - timedelta(seconds=rng.randrange(span)),
        )
        for index in range(count)
    ]


async def timed(read: Callable[[Window], Awaitable[Any]], window: Window) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        await read(window)
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
        await store.migrate()
        rollups = RollupStore(store)
        generated = sorted(records(count), key=lambda record: record.ts)  # the writer sees them in time order
        started = time.perf_counter()
        for start in range(0, len(generated), BATCH):
            await rollups.add(fold(generated[start : start + BATCH]))
        written = time.perf_counter() - started
        async with store.session() as session:
            from sqlalchemy import func, select

            from toolpolicy.store.schema import RollupRow

            rows = (await session.execute(select(func.count()).select_from(RollupRow))).scalar_one()
        print(
            f"{count:,} requests folded in {count // BATCH:,} batches: {written:.1f} s "
            f"({written / (count // BATCH) * 1000:.2f} ms a batch), {rows:,} rollup rows"
        )
        print("| Read | 24 h | 30 days |")
        print("| --- | ---: | ---: |")
        windows = [Window(NOW - timedelta(hours=hours), NOW + timedelta(hours=1)) for hours in (24, 720)]
        reads: dict[str, Callable[[Window], Awaitable[Any]]] = {
            "series (per hour)": rollups.series,
            "totals": rollups.total,
            "top keys": lambda window: rollups.top("key_name", window),
            "top models": lambda window: rollups.top("target", window, kinds=("llm",)),
        }
        for name, read in reads.items():
            day, month = [await timed(read, window) for window in windows]
            print(f"| {name} | {day:.1f} ms | {month:.1f} ms |")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
