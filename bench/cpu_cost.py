"""What each request costs the gateway process in CPU, A/B against another revision, on a machine busy with other work.

Throughput and latency move with whatever else runs on the cores; the CPU a process spends per request much less.
For each round and each tree (a git revision given with `--ref`, extracted with `git archive`, and this tree or
`--against`; or the source directories given with `--trees`; alternately), each variant (`isthmus`, `isthmus+gov`,
... as in `bench.gateway`) is started fresh against the benchmark's mocks (Redis and the OTLP sink when it needs
them), warmed up, and loaded with wrk at `--connections` for `--duration` seconds per scenario.
Reported: the gateway's CPU seconds (utime + stime from /proc, every thread) per 10,000 requests, and the share of
it spent by threads other than the main one (aiosqlite's driver thread, the OTLP exporter...).

`--profile` adds, per tree and variant and scenario, one py-spy recording under the same load, and prints the
share of samples (inclusive) whose stack is in the writers: the batch writer, the recorder, the store's writing
modules, the rollups, and aiosqlite's thread.

Run: `.venv/bin/python -m bench.cpu_cost --ref main [--against REV] [--paths isthmus,isthmus+gov,isthmus+otel]
[--scenarios chat,mcp-modern,mcp-legacy] [--rounds 3] [--duration 5] [--profile [--keep DIR]]`, or
`--trees DIR,DIR` to compare source directories (a worktree, say) instead of revisions.
Nothing here is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path as FilePath
from typing import Any

import yaml

from bench import gateway
from bench.loadgen import ensure_wrk, run_wrk
from bench.measure import preflight
from bench.procs import REPO, Processes, free_port, fresh_store
from bench.profile import CLOCK_TICKS, profile_under_load, thread_cpu
from bench.run import _ensure_redis, _python_proc
from bench.scenarios import Path, request_for

WRITER_FRAMES = (
    "toolpolicy/batching.py",
    "toolpolicy/telemetry/recorder.py",
    "toolpolicy/store/audit_append.py",
    "toolpolicy/store/audit_rows.py",
    "toolpolicy/store/audit_log.py",
    "toolpolicy/store/ledger.py",
    "toolpolicy/store/rate_journal.py",
    "toolpolicy/rollups/",
    "aiosqlite/",
)
"""A sample whose stack holds any of these files counts as the writers' (inclusive share)."""


def slug(label: str) -> str:
    """A tree's label as one relative directory name: a label like `/work/main` joined to the work directory
    would otherwise replace it, and the gateway's files would land in the tree itself."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "tree"


def serve_argv(tree: FilePath, config: FilePath) -> list[str]:
    """`isthmus serve` importing the gateway's packages from `tree` first."""
    code = f"import sys; sys.path.insert(0, {str(tree)!r}); from isthmus.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "serve", "--config", str(config), "--log-level", "warning"]


def start(  # type: ignore[no-untyped-def]
    processes: Processes,
    variant: gateway.Variant,
    upstreams: gateway.Upstreams,
    work: FilePath,
    tree: FilePath,
    *,
    wrap: Callable[[FilePath, list[str]], list[str]] | None = None,
    settings: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
):
    """The variant served from `tree`, healthy, and the path to it. `wrap` rewrites its command line (given the
    variant's directory); `settings` sets top-level keys of its config, or adds keys to a section given as a mapping
    (`{"key_cache_ttl": 60, "audit": {"batch_size": 50}}`)."""
    port = free_port()
    directory = work / variant.name.replace("+", "-")
    directory.mkdir(parents=True, exist_ok=True)
    key = "isk-bench-" + "0" * 32
    config = directory / "isthmus.yaml"
    data = gateway.config(variant, port, fresh_store(directory / "isthmus.db"), key, upstreams)
    for name, value in (settings or {}).items():
        data[name] = {**data.get(name, {}), **value} if isinstance(value, Mapping) else value
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    argv = serve_argv(tree, config)
    proc = processes.start(variant.name, wrap(directory, argv) if wrap else argv, port=port, cwd=directory, env=env)
    proc.wait_ready(timeout, "/health")
    gateway._wait_mcp_connected(proc, timeout)
    auth = (("Authorization", f"Bearer {key}"),)
    path = Path(
        variant.name,
        "gateway",
        proc.url,
        model=f"{gateway.PROVIDER}/mock-gpt",
        paced_model=f"{gateway.PROVIDER}/mock-gpt-paced",
        llm_headers=auth,
        mcp_headers=auth,
        proc=proc,
    )
    return proc, path


def extract(revision: str, into: FilePath) -> FilePath:
    """The files of `revision` in a directory of their own (`git archive`)."""
    into.mkdir()
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def labelled(trees: list[tuple[str, FilePath]]) -> dict[str, FilePath]:
    """The trees by label, a label given twice (the same tree measured twice, to see the noise) numbered."""
    found: dict[str, FilePath] = {}
    for label, tree in trees:
        unique, number = label, 1
        while unique in found:
            number += 1
            unique = f"{label} #{number}"
        found[unique] = tree
    return found


def add_tree_arguments(parser: argparse.ArgumentParser) -> None:
    """`--ref`, `--against` and `--trees`, which `trees_to_compare` reads."""
    parser.add_argument("--ref", default="main", help="the git revision to compare this tree with")
    parser.add_argument("--against", help="a git revision to measure instead of this working tree")
    parser.add_argument("--trees", help="comma-separated source directories to compare instead of revisions")


def trees_to_compare(trees: str | None, ref: str, against: str | None, work: FilePath) -> dict[str, FilePath]:
    """`--trees` (comma-separated directories), else `--ref` and `--against` (or this tree) extracted into `work`."""
    if trees:
        return labelled([(tree, FilePath(tree).resolve()) for tree in trees.split(",")])
    other = extract(against, work / "against") if against else REPO
    return labelled([(ref, extract(ref, work / "ref")), (against or "this tree", other)])


def interleaved(trees: dict[str, FilePath], rounds: int) -> Iterator[tuple[int, str, FilePath]]:
    """(round, label, tree) for each round and tree, the trees' order reversed every other round, so that a machine
    that speeds up or slows down over the run favours none of them."""
    for round_number in range(rounds):
        order = list(trees.items())
        if round_number % 2:
            order.reverse()
        for label, tree in order:
            yield round_number, label, tree


def start_upstreams(processes: Processes, variants: Sequence[gateway.Variant]) -> gateway.Upstreams:
    """The mock provider and MCP server, and Redis and the OTLP sink when a variant needs them, started."""
    _, llm_url = _python_proc(processes, "mock-llm", "bench.mock_llm")
    _, mcp_url = _python_proc(processes, "mock-mcp", "bench.mock_mcp")
    redis = _ensure_redis(processes) if any(variant.governance for variant in variants) else None
    sink = _python_proc(processes, "otlp-sink", "bench.otlp_sink")[1] if gateway.TRACED in variants else None
    return gateway.Upstreams(llm_url, mcp_url, redis=redis, otlp=sink)


def writer_share(collapsed: str) -> float:
    """The share of py-spy's raw samples whose stack passes through the writers."""
    total = hit = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        if any(frame in stack for frame in WRITER_FRAMES):
            hit += int(count)
    return hit / total if total else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_tree_arguments(parser)
    parser.add_argument("--paths", default="isthmus,isthmus+gov")
    parser.add_argument("--scenarios", default="chat,mcp-modern")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="also record py-spy once per tree, path, scenario")
    parser.add_argument("--keep", type=FilePath, help="a directory to copy the py-spy recordings to (collapsed stacks)")
    args = parser.parse_args()
    wrk = ensure_wrk()
    variants = [variant for variant in gateway.VARIANTS if variant.name in args.paths.split(",")]
    scenarios = [scenario for scenario in args.scenarios.split(",") if scenario]
    # (tree, variant, scenario) -> [(cpu s per 10k, share of other threads)]
    figures: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    shares: dict[tuple[str, str, str], float] = {}
    with contextlib.ExitStack() as stack:
        work = FilePath(stack.enter_context(tempfile.TemporaryDirectory(prefix="cpu-cost-")))
        trees = trees_to_compare(args.trees, args.ref, args.against, work)
        processes = stack.enter_context(Processes(work / "logs"))
        upstreams = start_upstreams(processes, variants)
        for round_number, label, tree in interleaved(trees, args.rounds):
            for variant in variants:
                proc, path = start(processes, variant, upstreams, work / slug(label), tree)
                try:
                    for scenario in scenarios:
                        request = request_for(path, scenario)
                        preflight(request)
                        run_wrk(request, args.connections, args.warmup, wrk=wrk)
                        before = thread_cpu(proc.pid)
                        result = run_wrk(request, args.connections, args.duration, wrk=wrk)
                        after = thread_cpu(proc.pid)
                        total = sum(after.values()) - sum(before.get(t, 0) for t in after)
                        others = total - (after[proc.pid] - before[proc.pid])
                        per_10k = total / CLOCK_TICKS / max(1, result.requests) * 10_000
                        figures[(label, variant.name, scenario)].append((per_10k, others / max(1, total)))
                        print(
                            f"round {round_number + 1} [{label}] {variant.name} {scenario}: "
                            f"{result.requests:,} requests ({result.rps:,.0f} rps, {result.error_count} errors), "
                            f"{per_10k:.2f} CPU s per 10k, other threads {others / max(1, total):.0%}",
                            flush=True,
                        )
                        if args.profile and round_number == 0:
                            output = work / f"profile-{slug(label)}-{variant.name}-{scenario}.txt"
                            profile_under_load(proc.pid, request, args.connections, 6.0, output, wrk=wrk)
                            shares[(label, variant.name, scenario)] = writer_share(output.read_text())
                            if args.keep:
                                args.keep.mkdir(parents=True, exist_ok=True)
                                shutil.copy(output, args.keep / output.name)
                finally:
                    processes.stop(proc)
                time.sleep(0.5)
    print("\nCPU seconds per 10,000 requests (median of rounds; every round's figure in brackets)")
    for variant in variants:
        for scenario in scenarios:
            for label in trees:
                values = figures[(label, variant.name, scenario)]
                cpu = [value for value, _ in values]
                line = f"  {variant.name} {scenario} [{label}]: {statistics.median(cpu):.2f} ("
                line += ", ".join(f"{value:.2f}" for value in cpu)
                line += f"); other threads {statistics.median(share for _, share in values):.0%}"
                if (label, variant.name, scenario) in shares:
                    line += f"; py-spy samples in the writers {shares[(label, variant.name, scenario)]:.1%}"
                print(line)


if __name__ == "__main__":
    main()
