"""The gateway's CPU time per 10,000 MCP calls, source trees side by side (A/B), on a machine others load too.

Throughput moves with whatever else runs on the cores; the CPU seconds the gateway process spends on a fixed kind of
request move much less. For each round and each tree (`--trees`, default this checkout): start the plain `isthmus`
gateway from that tree in front of the mock MCP server, open the scenario's request (a 2025-era session for
`mcp-legacy`), warm up, then run wrk for `--duration` seconds and read the process's utime+stime (`/proc/<pid>/stat`,
its threads and children included) before and after. Trees alternate within each round, so drift hits both alike.

    .venv/bin/python -m bench.cpu_cost --trees /work/main,. --scenarios mcp-legacy,mcp-modern --rounds 3

Prints one line per measurement and a summary: median CPU ms per call (= CPU s per 1,000 calls), CPU s per 10,000.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path as FilePath

import yaml

from bench import gateway
from bench.loadgen import ensure_wrk, run_wrk
from bench.procs import Processes, descendants, free_port
from bench.run import _python_proc
from bench.scenarios import Path, Scenario, request_for

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime+stime of `pid` and its descendants (all threads), in seconds."""
    total = 0
    for member in (pid, *descendants(pid)):
        try:
            fields = FilePath(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / TICKS


def start_from(processes: Processes, tree: FilePath, upstreams: gateway.Upstreams, work: FilePath) -> tuple[int, str]:
    """`isthmus serve` with the plain variant's config, its code imported from `tree`; (pid, base URL, key)."""
    port = free_port()
    directory = work / f"{tree.name}-{port}"
    directory.mkdir(parents=True)
    key = "isk-bench-" + secrets.token_hex(16)
    config = directory / "isthmus.yaml"
    data = gateway.config(gateway.PLAIN, port, directory / "isthmus.db", key, upstreams)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    launcher = f"import sys; sys.path.insert(0, {str(tree)!r}); from isthmus.cli import main; sys.exit(main())"
    argv = [sys.executable, "-c", launcher, "serve", "--config", str(config), "--log-level", "warning"]
    proc = processes.start(f"gateway-{tree.name}-{port}", argv, port=port, cwd=directory)
    proc.wait_ready(60, "/health")
    gateway._wait_mcp_connected(proc, 60)
    return proc.pid, key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", default=".", help="comma-separated source trees to A/B (default: this one)")
    parser.add_argument("--scenarios", default="mcp-legacy,mcp-modern")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per measurement")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    trees = [FilePath(tree).resolve() for tree in args.trees.split(",")]
    scenarios: list[Scenario] = args.scenarios.split(",")
    wrk = ensure_wrk()
    cost: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="isthmus-cpu-") as tmp, Processes(FilePath(tmp) / "logs") as processes:
        work = FilePath(tmp)
        _, llm_url = _python_proc(processes, "mock-llm", "bench.mock_llm")
        _, mcp_url = _python_proc(processes, "mock-mcp", "bench.mock_mcp")
        upstreams = gateway.Upstreams(llm_url, mcp_url)
        for round_number in range(1, args.rounds + 1):
            for tree in trees if round_number % 2 else reversed(trees):
                pid, key = start_from(processes, tree, upstreams, work)
                proc = processes.started[-1]
                auth = (("Authorization", f"Bearer {key}"),)
                path = Path(tree.name, "gateway", proc.url, mcp_headers=auth, llm_headers=auth)
                for scenario in scenarios:
                    request = request_for(path, scenario)
                    run_wrk(request, args.connections, args.warmup, wrk=wrk)
                    before = cpu_seconds(pid)
                    result = run_wrk(request, args.connections, args.duration, wrk=wrk)
                    spent = cpu_seconds(pid) - before
                    per_call_ms = spent / max(result.requests, 1) * 1000
                    cost.setdefault((str(tree), scenario), []).append(per_call_ms)
                    print(
                        f"round {round_number} {tree} {scenario} c={args.connections}: {result.requests} calls, "
                        f"{result.rps:,.0f} rps, errors {result.error_count}, CPU {spent:.2f} s = "
                        f"{per_call_ms:.3f} ms/call",
                        flush=True,
                    )
                processes.stop(proc)
    print("\nmedian CPU per call (CPU seconds per 10,000 calls):")
    for (tree, scenario), values in cost.items():
        median = statistics.median(values)
        spread = ", ".join(f"{value:.3f}" for value in values)
        print(f"  {tree} {scenario}: {median:.3f} ms ({median * 10:.2f} s per 10,000; rounds: {spread})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
