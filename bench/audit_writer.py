"""Audit writer throughput: how fast a backlog of gateway-like records drains, and what it costs the event loop.

`--writer rollups` and `--writer spend` measure the gateway's other per-request writers the same way: the hourly
rollups (fed the same records) and the spend ledger (one entry per priced request); the sustained mode is the audit
writer's only.

N records shaped like the chat path's (a key, a team, tokens, a cost, the usual `details`) are emitted at once into
a writer wired as the gateway wires it, then `flush()` writes them all. Reported per store:

- records/s drained (wall clock of the flush);
- event-loop CPU per record (`time.thread_time` of the loop's thread: what request handling loses to the writer);
- process CPU per record (every thread: on SQLite the driver's thread works too, and holds the GIL part of the time);
- thread hops per transaction (callbacks handed to the loop from another thread: one per aiosqlite call);
- whether the chain verifies afterwards.

`--sustain RATE` instead emits RATE records/s for `--duration` seconds from `--connections` tasks that stand for the
gateway's request handlers: each holds the loop `--load-us` microseconds per record, so the writer's task waits its
turn among them as it does under load (every thread hop costs it a turn, and a driver thread waits for the GIL).
Reported: the rates emitted and written, and the writer's largest backlog (a writer that keeps up stays near one
batch). A RATE the loop cannot reach (e.g. 100000) saturates it, as a gateway at full load: then the written rate
is what the writer manages on the loop's leftovers.

`--lag` instead measures how late the loop answers requests while the writer drains the backlog: another thread
hands the loop a request every 0.5 ms (as a socket would wake it), each holding it 0.15 ms (a loop about a third
busy, as at one connection). Reported: the lateness p99 and maximum, and the share of requests more than 1 ms late
(what a batch prepared on the loop in one go, or a driver thread holding the GIL, adds to a request's latency).

`--ref REV` runs the same measurement on the toolpolicy package of git revision REV (extracted with `git archive`
into a temporary directory) and on this tree, alternately, `--rounds` times each, in fresh processes.

Run: `.venv/bin/python bench/audit_writer.py [--records 20000] [--store sqlite|postgresql] [--ref REV] [--writer W]
[--sustain 3000 --duration 10 --load-us 200] [--lag]` (PostgreSQL: the server on 127.0.0.1:5432, a throwaway schema).
Nothing here is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def records(count: int) -> list[Any]:
    from toolpolicy import sanitize
    from toolpolicy.audit import AuditRecord

    made = []
    for index in range(count):
        details = {"api": "chat", "endpoint": "/v1/chat/completions", "stream": False, "route": "mock/gpt-4o-mini"}
        details.update(attempts=1, ttfb_ms=1.234)
        record = AuditRecord(
            request_id=uuid.uuid4().hex,
            kind="llm",
            target="gpt-4o-mini",
            decision="allow",
            status=200,
            latency_ms=round(1.0 + index % 97 / 100, 3),
            key_id=f"k{index % 7:031d}",
            key_name=f"bench-key-{index % 7}",
            team="bench-team",
            customer=None,
            tokens_in=12 + index % 50,
            tokens_out=30 + index % 40,
            cost_usd=Decimal("0.0000375") * (1 + index % 5),
            details=details,
            ts=datetime.now(UTC),
        )
        made.append(sanitize.audit_record(record))  # the recorder does this before the writer sees it
    return made


async def open_store(kind: str) -> tuple[Any, Any]:
    from toolpolicy.store import Store

    if kind == "sqlite":
        directory = tempfile.TemporaryDirectory()
        return Store.open(f"sqlite+aiosqlite:///{directory.name}/bench.db"), directory
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(POSTGRES.replace("postgresql+asyncpg", "postgresql"))
    await connection.execute(f'CREATE SCHEMA "{schema}"')
    await connection.close()
    return Store.open(POSTGRES, connect_args={"server_settings": {"search_path": schema}}), schema


async def close_store(store: Any, handle: Any) -> None:
    await store.close()
    if isinstance(handle, str):
        import asyncpg

        connection = await asyncpg.connect(POSTGRES.replace("postgresql+asyncpg", "postgresql"))
        await connection.execute(f'DROP SCHEMA "{handle}" CASCADE')
        await connection.close()
    else:
        handle.cleanup()


def writer_for(log: Any, kind: str = "audit") -> Any:
    """A batch writer wired as the gateway wires the `kind` writer (its batch size as the tree being measured sets
    it), writing to `log` (an AuditLog, a RollupStore or a SpendLedger)."""
    from toolpolicy import quarantine, runtime
    from toolpolicy.batching import BatchWriter
    from toolpolicy.store.faults import is_record_fault

    if kind == "rollups":
        batch_size = getattr(runtime, "ROLLUP_BATCH_SIZE", 200)
        return BatchWriter[Any](log.write_batch, name=kind, batch_size=batch_size, is_record_fault=is_record_fault)
    from toolpolicy.settings import AuditSettings

    fix = quarantine.audit_record if kind == "audit" else quarantine.spend_entry
    size = AuditSettings().batch_size  # the configured default, as `runtime` passes it
    faults = is_record_fault
    return BatchWriter[Any](log.write_batch, name=kind, batch_size=size, is_record_fault=faults, quarantine=fix)


def items_for(kind: str, count: int) -> list[Any]:
    """What the `kind` writer is given per request: audit records (the recorder's, cleaned), or spend entries."""
    made = records(count)
    if kind != "spend":
        return made
    from toolpolicy.store.ledger import SpendEntry

    return [
        SpendEntry(
            request_id=record.request_id,
            target=record.target,
            cost_usd=record.cost_usd,
            key_id=record.key_id,
            team_id="t" * 32,
            customer_id="c" * 32,
            provider="mock",
            created_at=record.ts,
        )
        for record in made
    ]


def sink_for(store: Any, kind: str) -> Any:
    from toolpolicy.store.audit_log import AuditLog

    if kind == "rollups":
        from toolpolicy.rollups import RollupStore

        return RollupStore(store)
    if kind == "spend":
        from toolpolicy.store.ledger import SpendLedger

        return SpendLedger(store)
    return AuditLog(store)


class HopCounter:
    """Counts callbacks other threads hand to the loop (aiosqlite answers every call that way)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.count = 0
        original = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]


async def drain(kind: str, count: int, which: str = "audit") -> dict[str, Any]:
    store, handle = await open_store(kind)
    try:
        await store.migrate()
        log = sink_for(store, which)
        warm = writer_for(log, which)  # connections opened, statements compiled and cached
        for record in items_for(which, 400):
            warm.emit(record)
        await warm.flush()
        writer = writer_for(log, which)
        batch = items_for(which, count)
        hops = HopCounter(asyncio.get_running_loop())
        for record in batch:
            writer.emit(record)
        wall, loop_cpu, cpu, hops.count = time.perf_counter(), time.thread_time(), time.process_time(), 0
        await writer.flush()
        wall, loop_cpu = time.perf_counter() - wall, time.thread_time() - loop_cpu
        cpu, transactions, hopped = time.process_time() - cpu, -(-count // writer._batch_size), hops.count
        report = await log.verify() if which == "audit" else None
        return {
            "records_per_s": count / wall,
            "loop_us_per_record": loop_cpu / count * 1e6,
            "cpu_us_per_record": cpu / count * 1e6,
            "hops_per_transaction": hopped / transactions,
            "written": writer.written,
            "verify": report.ok if report is not None else None,
        }
    finally:
        await close_store(store, handle)


async def sustain(kind: str, rate: int, duration: float, load_us: float, connections: int) -> dict[str, Any]:
    from toolpolicy.store.audit_log import AuditLog

    store, handle = await open_store(kind)
    try:
        await store.migrate()
        log = AuditLog(store)
        writer = writer_for(log)
        writer.start()
        pool = records(min(rate, 5000))
        loop = asyncio.get_running_loop()
        started, largest, emitted = loop.time(), 0, 0

        async def connection(offset: float) -> None:
            # One client connection's requests: each holds the loop `load_us`, emits its record, and waits for
            # the next one due; like the gateway's handlers, they take turns with the writer's task on one loop.
            nonlocal largest, emitted
            due = started + offset
            while (now := loop.time()) - started < duration:
                busy_until = time.perf_counter() + load_us / 1e6
                while time.perf_counter() < busy_until:
                    pass
                writer.emit(pool[emitted % len(pool)])
                emitted += 1
                largest = max(largest, writer.pending)
                due += connections / rate
                await asyncio.sleep(max(0.0, due - now))

        await asyncio.gather(*(connection(index / rate) for index in range(connections)))
        elapsed = loop.time() - started
        achieved, drained, left = emitted / elapsed, writer.written / elapsed, writer.pending
        await writer.aclose()
        return {"rate": achieved, "drained": drained, "largest_backlog": largest, "backlog_at_end": left}
    finally:
        await close_store(store, handle)


async def lateness(kind: str, count: int, every: float = 0.0005, hold: float = 0.00015) -> dict[str, Any]:
    store, handle = await open_store(kind)
    try:
        await store.migrate()
        log = sink_for(store, "audit")
        warm = writer_for(log)
        for record in items_for("audit", 400):
            warm.emit(record)
        await warm.flush()
        writer = writer_for(log)
        for record in items_for("audit", count):
            writer.emit(record)
        loop, late, stop = asyncio.get_running_loop(), [], threading.Event()
        started = time.perf_counter()

        def request(posted: float) -> None:
            if posted >= started:
                late.append(time.perf_counter() - posted)
            busy_until = time.perf_counter() + hold
            while time.perf_counter() < busy_until:
                pass

        def requests() -> None:
            while not stop.is_set():
                time.sleep(every)
                loop.call_soon_threadsafe(request, time.perf_counter())

        poster = threading.Thread(target=requests, daemon=True)
        poster.start()
        try:
            await writer.flush()
        finally:
            stop.set()
            poster.join()
        wall = time.perf_counter() - started
        late.sort()
        return {
            "late_p99_ms": late[int(len(late) * 0.99)] * 1e3,
            "late_max_ms": late[-1] * 1e3,
            "late_over_1ms": sum(1 for value in late if value > 0.001) / len(late),
            "records_per_s": count / wall,
        }
    finally:
        await close_store(store, handle)


def child(args: argparse.Namespace) -> None:
    # This script's folder (bench/, first on the path) holds a `profile` module that would shadow the stdlib's.
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
    if args.lag:
        result = asyncio.run(lateness(args.store[0], args.records))
    elif args.sustain:
        result = asyncio.run(sustain(args.store[0], args.sustain, args.duration, args.load_us, args.connections))
    else:
        result = asyncio.run(drain(args.store[0], args.records, args.writer))
    import toolpolicy

    print(json.dumps({**result, "source": str(Path(toolpolicy.__file__).parent.parent)}))


def measure(tree: Path, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--store",
        kind,
        "--records",
        str(args.records),
        "--writer",
        args.writer,
    ]
    if args.lag:
        command += ["--lag"]
    if args.sustain:
        command += ["--sustain", str(args.sustain), "--duration", str(args.duration), "--load-us", str(args.load_us)]
        command += ["--connections", str(args.connections)]
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        output = subprocess.run(
            command, env=environment, check=True, capture_output=True, text=True, cwd=tree, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {args.timeout:g}s"}
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def describe(result: dict[str, Any]) -> str:
    if "error" in result:
        return str(result["error"])
    if "late_p99_ms" in result:
        return (
            f"requests late p99 {result['late_p99_ms']:.2f} ms, max {result['late_max_ms']:.2f} ms, "
            f"{result['late_over_1ms']:.1%} over 1 ms; {result['records_per_s']:,.0f} records/s"
        )
    if "largest_backlog" in result:
        return (
            f"{result['rate']:,.0f} records/s emitted, {result['drained']:,.0f} written, "
            f"largest backlog {result['largest_backlog']:,}, "
            f"{result['backlog_at_end']:,} at the end"
        )
    return (
        f"{result['records_per_s']:,.0f} records/s, loop {result['loop_us_per_record']:.1f} µs/record, "
        f"process CPU {result['cpu_us_per_record']:.1f} µs/record, "
        f"{result['hops_per_transaction']:.1f} hops/transaction"
        + ("" if result["verify"] is None else f", verify {'OK' if result['verify'] else 'FAILED'}")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--writer", choices=["audit", "rollups", "spend"], default="audit", help="which writer")
    parser.add_argument("--ref", help="a git revision to measure beside this tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sustain", type=int, default=0, help="records/s to emit while the writer runs")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--load-us", type=float, default=200.0, help="loop CPU per record standing for a request")
    parser.add_argument("--connections", type=int, default=16, help="tasks emitting side by side (--sustain)")
    parser.add_argument("--lag", action="store_true", help="how late the loop answers requests during a drain")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one measurement may take")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.store = args.store or ["sqlite", "postgresql"]
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"this tree": ROOT}
        if args.ref:
            archive = subprocess.run(
                ["git", "archive", args.ref, "toolpolicy"], cwd=ROOT, check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
            trees = {args.ref: Path(scratch), **trees}
        for kind in args.store:
            for round_number in range(args.rounds):
                for label, tree in trees.items():
                    print(f"{kind} [{label}] round {round_number + 1}: {describe(measure(tree, kind, args))}")


if __name__ == "__main__":
    main()
