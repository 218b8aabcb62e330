"""What the Redis counter scripts cost Redis per governed request, A/B between revisions.

    .venv/bin/python -m bench.counter_cost                     # this tree, 3,000 requests, 3 rounds
    .venv/bin/python -m bench.counter_cost --ref main --rounds 5
    .venv/bin/python -m bench.counter_cost --ref main --rounds 2 --requests 1000 --callgrind

Each request reserves the governed benchmark's five limits (the key's request and token rate limits, a customer's
monthly budget, a team's rolling day of 61 buckets, the key's lifetime budget) and settles four of them, as
`isthmus+gov` does on chat, through `RedisCounterStore` against a Redis database of its own (flushed first; the
settlements ride along with the next reservation). Reported: Redis's own time per request, from `INFO commandstats`
(the scripts' time with the commands they run; the time Redis spends reading and answering the connection is not
in it), and the commands the scripts run per request. On a machine with few cores Redis's time is taken from the
gateway's: the governed path's throughput moves with it. Redis on 127.0.0.1:6379 (`--redis`), database 12 by
default. Nothing here is asserted; the figures are printed.

`--callgrind` counts Redis's instructions per request instead of its time: each round starts a private `redis-server`
(no persistence, a free loopback port) under callgrind and counts from the end of the warm-up to the last settlement
landed, whatever the machine's load (the server's reading and answering of the connection included).

`--ref REV` measures the `toolpolicy` package of a git revision (extracted with `git archive`) beside this tree,
alternately, in fresh processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_796_580_085.0
"""A fixed clock: the windows' buckets are named from it, so every round counts the same buckets."""


def limits(key: str) -> list[Any]:
    """The five limits a governed chat request reserves (amounts as the benchmark's request gives them)."""
    from toolpolicy.counters.base import Limit

    minute = f"60s@{int(NOW // 60)}"
    day = tuple(f"b:team:t:-:1dr@{index}" for index in range(int(NOW // 1440) - 60, int(NOW // 1440) + 1))
    rate = f"rl:{key}:-:"
    return [
        Limit(
            f"{rate}requests:60",
            (f"{rate}requests:60:{minute}",),
            f"{rate}requests:60:{minute}",
            10**9,
            1,
            True,
            120,
            seeded=True,
            window_start=NOW - NOW % 60,
        ),
        Limit(
            f"{rate}tokens:60",
            (f"{rate}tokens:60:{minute}",),
            f"{rate}tokens:60:{minute}",
            10**9,
            41,
            False,
            120,
            seeded=True,
            window_start=NOW - NOW % 60,
        ),
        Limit(
            "b:customer:c:-:1M",
            ("b:customer:c:-:1M@20261201T00",),
            "b:customer:c:-:1M@20261201T00",
            10**15,
            13350,
            ttl=2_764_800,
            seeded=True,
        ),
        Limit("b:team:t:-:1dr", day, day[-1], 10**15, 13350, ttl=174_240, seeded=True, used_prefix="b:team:t:-:1dr@"),
        Limit(f"b:key:{key}:-:life", (f"b:key:{key}:-:life",), f"b:key:{key}:-:life", 10**15, 13350, seeded=True),
    ]


async def measure(url: str, count: int, *, pause: bool = False) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from toolpolicy.counters.base import Settlement
    from toolpolicy.counters.redis import RedisCounterStore

    client = aioredis.Redis.from_url(url)
    store = RedisCounterStore(url)
    try:
        await client.flushdb()
        planned = limits("k1")
        for _ in range(3):  # seeded buckets are reported missing once, then seeded as the governor would
            outcome = await store.reserve("warm", planned, now=NOW, hold_seconds=600)
            if outcome.ok:
                break
            for key in outcome.missing or ():
                await store.seed(key, 0, 200_000, now=NOW)
        await store.settle("warm", [Settlement(limit, 0) for limit in planned[1:]], now=NOW)
        await store.flush()
        await client.config_resetstat()
        if pause:  # Redis runs under callgrind: the parent zeroes its counters now (see `callgrind_round`)
            print("ready", flush=True)
            sys.stdin.readline()
        for index in range(count):
            request_id = uuid.uuid4().hex
            outcome = await store.reserve(request_id, planned, now=NOW + index / 1e4, hold_seconds=600)
            if not outcome.ok:
                raise RuntimeError(f"a reservation was refused: {outcome}")
            await store.settle(request_id, [Settlement(limit, limit.amount // 2) for limit in planned[1:]], now=NOW)
        await store.flush()
        if pause:
            print("done", flush=True)
            sys.stdin.readline()
        stats = await client.info("commandstats")
    finally:
        await store.aclose()
        await client.aclose()
    scripts = stats.get("cmdstat_evalsha", {"usec": 0, "calls": 0})
    inner = {name.removeprefix("cmdstat_"): figures["calls"] / count for name, figures in stats.items()}
    inner.pop("evalsha", None)
    inner.pop("config|resetstat", None)
    return {"us_per_request": scripts["usec"] / count, "calls": scripts["calls"], "commands": inner}


def run_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.counter_cost", "--child", "--redis", args.redis, "--requests"]
    command.append(str(args.requests))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join((str(tree), str(ROOT)))}
    done = subprocess.run(command, env=environment, cwd=tree, check=True, capture_output=True, text=True, timeout=600)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def callgrind_round(tree: Path, args: argparse.Namespace, keep: Path | None) -> float:
    """Redis's own instructions per request: a private `redis-server` (no persistence, on a free loopback port) under
    callgrind, counting from the end of the warm-up to the last settlement landed."""
    from bench.callgrind import Controlled, count_paused_run, valgrind_argv
    from bench.procs import free_port

    port = free_port()
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        stem = (keep or Path(scratch)) / f"callgrind.redis.{tree.name}"
        # `--hz 1`: Redis's own timer work (per second, not per request, and seconds run long under callgrind on a
        # loaded machine) kept out of the count as far as it can be.
        server_argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        server_argv += ["--hz", "1"]
        server = subprocess.Popen(
            valgrind_argv(stem, server_argv), cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_for_redis(port)
            command = [sys.executable, "-m", "bench.counter_cost", "--child", "--pause", "--requests"]
            command += [str(args.requests), "--redis", f"redis://127.0.0.1:{port}/0"]
            environment = {**os.environ, "PYTHONPATH": os.pathsep.join((str(tree), str(ROOT)))}
            child = subprocess.Popen(
                command, env=environment, cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            instructions = count_paused_run(child, Controlled(server.pid, stem), timeout=120)
        finally:
            server.terminate()
            server.wait(timeout=60)
    return instructions / args.requests


def _wait_for_redis(port: int, timeout: float = 60.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server under callgrind did not answer on port {port}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ref", help="a git revision to measure beside this tree")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12", help="a Redis database the run may flush")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count Redis's instructions per request instead (a private redis-server under callgrind)",
    )
    parser.add_argument("--keep", type=Path, help="with --callgrind: keep Redis's callgrind dumps here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pause", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.redis, args.requests, pause=args.pause))))
        return
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"this tree": ROOT}
        if args.ref:
            # Only the package measured: the child runs this tree's bench module beside the revision's toolpolicy.
            archive = subprocess.run(
                ["git", "archive", args.ref, "toolpolicy"], cwd=ROOT, check=True, capture_output=True
            )
            subprocess.run(["tar", "-x", "-C", scratch], input=archive.stdout, check=True)
            trees = {args.ref: Path(scratch), **trees}
        figures: dict[str, list[float]] = {label: [] for label in trees}
        for round_number in range(args.rounds):
            for label, tree in trees.items():
                if args.callgrind:
                    figure = callgrind_round(tree, args, args.keep)
                    figures[label].append(figure)
                    print(f"round {round_number + 1} [{label}]: {figure:,.0f} Ir of Redis per request", flush=True)
                    continue
                result = run_tree(tree, args)
                figures[label].append(result["us_per_request"])
                commands = ", ".join(f"{name} {per:.1f}" for name, per in sorted(result["commands"].items()) if per)
                print(
                    f"round {round_number + 1} [{label}]: {result['us_per_request']:.1f} us of Redis per request; "
                    f"commands per request: {commands}"
                )
        unit = "Ir" if args.callgrind else "us"
        print(f"\nRedis {'instructions' if args.callgrind else 'time'} per governed request, median of rounds:")
        for label, values in figures.items():
            shown = ", ".join(f"{value:,.1f}" for value in values)
            print(f"  {label}: {statistics.median(values):,.1f} {unit} ({shown})")


if __name__ == "__main__":
    main()
