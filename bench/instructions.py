"""Instructions each request costs the gateway, counted by callgrind: an A/B that the machine's load does not move.

`bench.cpu_cost` times CPU per request; on this shared 2-core machine its rounds scatter by 10-30%, more than the
changes it is asked to judge. Here the gateway runs under `valgrind --tool=callgrind` and the figure is the count of
instructions (Ir) its threads execute per request, which depends on the code and the request, not the hour.

For each round and each tree (`--ref` extracted with `git archive`, against this tree or `--against`; or `--trees`;
alternately, as in `bench.cpu_cost`), each variant is started fresh under callgrind with instrumentation off, against
the benchmark's mocks. Per scenario: `--warmup` requests uninstrumented (fast), then instrumentation on; an idle
window (`--idle` seconds with no requests) gives the instructions the idle gateway spends per second (uvicorn's
0.1 s tick, its timers); then exactly `--requests` requests, one after another on one kept connection, until the
process is quiet again, and the dump. Reported: (window − idle rate × window's seconds) / requests.

What is set for the count to be repeatable (each only where the tree's settings know it):
- `key_cache_ttl` an hour: a virtual key is looked up in the store once, not again each 5 s of the window;
- `telemetry.loop_lag_interval: 0`: the lag probe's thread wakes by the clock;
- `audit.flush_interval` an hour and `audit.batch_size` = `--requests`: the audit writer flushes once per window,
  with that window's records, instead of every 0.5 s (a count of flushes set by how slow valgrind made the window);
  the rollups writer, paced by the same interval, does not flush in a window, so its cost is not counted;
- `audit.spend_flush_interval` an hour: `isthmus+gov`'s spend writer flushes once per window too (a tree from
  before that setting flushes it every 0.25 s, so its governed figure keeps a share that follows the window's
  length);
- `audit.rate_journal_flush_interval` an hour: so does its rate journal (rate-limit usage per bucket; likewise
  every 0.25 s in a tree from before that setting);
- `PYTHONHASHSEED=0`: the same hashing, so the same set and dict layouts, in every process;
- `OTEL_BSP_SCHEDULE_DELAY` an hour (`isthmus+otel`): spans are exported when 2,048 are queued, not every 5 s; a
  window that holds such an export counts it.

Figures are comparable only at the same `--requests` (the audit flush is shared by the window's requests). The
warm-up is by default one batch and more (`--requests` + 60), so the audit writer's first flush, which prepares its
SQLite statements (about 41k Ir a request of a 100-request window; later flushes find them prepared, as production's
do), is not counted: until 2026-12-07 it was (warm-up 60), and the first scenario's figure was that much higher.
`--top K` prints, for the first tree, the C functions with the most instructions (Python code shows as the
interpreter's `_PyEval_EvalFrameDefault`); `--keep DIR` keeps every window's dump for `callgrind_annotate`.

Run: `.venv/bin/python -m bench.instructions --ref main [--against REV | --trees DIR,DIR,...] [--paths isthmus]
[--scenarios chat,stream,mcp-modern] [--rounds 3] [--requests 100] [--top K] [--keep DIR]`. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import shutil
import statistics
import tempfile
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, cast

from bench import gateway
from bench.callgrind import Controlled, Dump, missing_tools, top_functions, valgrind_argv
from bench.cpu_cost import add_tree_arguments, interleaved, slug, start, start_upstreams, trees_to_compare
from bench.loadgen import HttpRequest, with_id
from bench.measure import preflight
from bench.procs import Processes
from bench.profile import thread_cpu
from bench.scenarios import Path, Scenario, SetupError, request_for

START_TIMEOUT = 600.0
"""Seconds the gateway may take to answer /health under valgrind (about 20 s here; a loaded machine takes longer)."""
QUIET_TICKS = 1
"""A process whose threads used at most this many clock ticks in `QUIET_SPELL` seconds has finished its work."""
QUIET_SPELL = 0.5
HOUR = 3600.0
WARMUP_BEYOND_FLUSH = 60
"""The default warm-up's requests past one audit batch (`--requests`): the first flush falls in the warm-up."""
HOUR_MS = str(int(HOUR * 1000))


class ClientError(RuntimeError):
    """A request of the window was not answered as expected: the count would not be the requests' cost."""


def send(request: HttpRequest, count: int, first_id: int = 1) -> float:
    """`count` requests, one after another on one kept connection, each read to its end and checked; the seconds
    they took."""
    parts = urllib.parse.urlsplit(request.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=300)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = dict(request.headers)
    started = time.monotonic()
    try:
        for number in range(first_id, first_id + count):
            connection.request(request.method, target, body=with_id(request.body, number), headers=headers)
            answer = connection.getresponse()
            text = answer.read().decode("utf-8", "replace")
            if not 200 <= answer.status < 300 or request.expect not in text:
                raise ClientError(f"request {number} to {request.url} answered {answer.status}: {text[:300]}")
    finally:
        connection.close()
    return time.monotonic() - started


def wait_quiet(pid: int, timeout: float = 120.0) -> None:
    """Wait until the process's threads stop using CPU: what a request left to do (a batch's write) is done."""
    deadline = time.monotonic() + timeout
    before = sum(thread_cpu(pid).values())
    while time.monotonic() < deadline:
        time.sleep(QUIET_SPELL)
        after = sum(thread_cpu(pid).values())
        if after - before <= QUIET_TICKS:
            return
        before = after
    raise TimeoutError(f"process {pid} was still busy after {timeout:g}s")


@dataclass(frozen=True)
class Window:
    """One measured window: its dump, and the wall-clock seconds between the zero and the dump."""

    dump: Dump
    seconds: float


def window(controlled: Controlled, pid: int, action: Callable[[], object]) -> Window:
    """Zero the counters, run `action` (requests, or a sleep), wait until the process is quiet, dump."""
    wait_quiet(pid)
    controlled.zero()
    started = time.monotonic()
    action()
    wait_quiet(pid)
    seconds = time.monotonic() - started
    return Window(controlled.dump(), seconds)


def per_request(busy: Window, idle: Window, requests: int) -> float:
    """Instructions per request: the busy window's, less what the idle gateway spends in as many seconds."""
    if requests <= 0:
        raise ValueError(f"requests must be positive, not {requests}")
    if idle.seconds <= 0:
        raise ValueError(f"the idle window must last some time, not {idle.seconds}s")
    idle_rate = idle.dump.instructions / idle.seconds
    return (busy.dump.instructions - idle_rate * busy.seconds) / requests


def tree_settings(tree: FilePath, requests: int) -> dict[str, Any]:
    """The config the count needs (see the module's docstring), limited to the settings `tree` knows."""
    # `audit:` moved from settings.py to audit_settings.py: a tree has its options in one or the other.
    names = ("telemetry_settings.py", "settings.py", "audit_settings.py")
    known = [tree / "toolpolicy" / name for name in names]
    text = "".join(path.read_text() for path in known if path.exists())
    settings: dict[str, Any] = {}
    if "key_cache_ttl" in text:
        settings["key_cache_ttl"] = HOUR
    if "loop_lag_interval" in text:
        settings["telemetry"] = {"loop_lag_interval": 0}
    if "flush_interval" in text and "batch_size" in text:
        settings["audit"] = {"flush_interval": HOUR, "batch_size": requests}
        if "spend_flush_interval" in text:
            settings["audit"]["spend_flush_interval"] = HOUR
        if "rate_journal_flush_interval" in text:
            settings["audit"]["rate_journal_flush_interval"] = HOUR
    return settings


def spread(values: list[float]) -> float:
    """(max - min) / median: how far apart the rounds are, as a share."""
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else 0.0


@dataclass(frozen=True)
class Options:
    requests: int
    warmup: int
    idle: float
    top: int
    keep: FilePath | None


def measure_scenario(
    controlled: Controlled, path: Path, scenario: Scenario, options: Options
) -> tuple[Window, float] | None:
    """One scenario on a started gateway: warm-up, idle window, counted window; the counted window and the Ir per
    request, or None (said why) if the scenario cannot run on this path."""
    try:
        request = request_for(path, scenario)
        preflight(request)
    except SetupError as exc:
        print(f"  {scenario}: not measured: {exc}", flush=True)
        return None
    send(request, options.warmup)
    controlled.instrument(True)
    idle = window(controlled, controlled.pid, lambda: time.sleep(options.idle))
    busy = window(controlled, controlled.pid, lambda: send(request, options.requests, first_id=1_000_000))
    controlled.instrument(False)
    idle_rate = idle.dump.instructions / idle.seconds
    value = per_request(busy, idle, options.requests)
    print(
        f"  {scenario}: {value:,.0f} Ir per request ({busy.dump.instructions:,} in {busy.seconds:.1f}s for "
        f"{options.requests} requests; idle {idle_rate:,.0f} Ir/s, so "
        f"{idle_rate * busy.seconds / busy.dump.instructions:.2%} of the window subtracted)",
        flush=True,
    )
    return busy, value


def print_top(dump: FilePath, count: int, requests: int) -> None:
    """The functions with the most self and inclusive Ir per request (C functions: the interpreter's frames show as
    `_PyEval_EvalFrameDefault`, not as the Python functions they run)."""
    for inclusive in (False, True):
        print(f"    top {count} functions by {'inclusive' if inclusive else 'self'} Ir per request:")
        for total, name in top_functions(dump, count, inclusive=inclusive):
            print(f"    {total / requests:>12,.0f}  {name}")


def report(
    figures: dict[tuple[str, str, str], list[float]], trees: list[str], variants: list[str], scenarios: list[str]
) -> None:
    print("\nInstructions (Ir) per request, all threads of the gateway: median of rounds, every round in brackets,")
    print("spread = (max - min) / median; each tree against the first")
    for variant in variants:
        for scenario in scenarios:
            medians: dict[str, float] = {}
            for label in trees:
                values = figures.get((label, variant, scenario))
                if not values:
                    continue
                medians[label] = statistics.median(values)
                every = ", ".join(f"{value:,.0f}" for value in values)
                print(f"  {variant} {scenario} [{label}]: {medians[label]:,.0f} ({every}); spread {spread(values):.2%}")
            if len(medians) < 2:
                continue
            (first, base), *others = medians.items()
            for label, value in others:
                print(f"    [{label}] vs [{first}]: {value - base:+,.0f} Ir, {(value - base) / base:+.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_tree_arguments(parser)
    parser.add_argument("--paths", default="isthmus")
    parser.add_argument("--scenarios", default="chat,mcp-modern")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100, help="requests counted per window")
    parser.add_argument(
        "--warmup",
        type=int,
        help="requests before each window, not counted (default: --requests + 60, so the audit writer's first flush, "
        "which prepares its SQLite statements once for the process, falls in the warm-up, not in a window)",
    )
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of the idle window")
    parser.add_argument("--top", type=int, default=0, help="print the K functions with the most Ir (first tree)")
    parser.add_argument("--keep", type=FilePath, help="a directory to copy each window's callgrind dump to")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = args.requests + WARMUP_BEYOND_FLUSH
    if args.requests < 1 or args.rounds < 1 or args.warmup < 0 or args.idle <= 0:
        parser.error("--requests and --rounds must be at least 1, --warmup not negative, --idle positive")
    missing = missing_tools()
    if missing:
        parser.error(f"valgrind is needed: {', '.join(missing)} not found (apt-get install valgrind)")
    names = [name for name in args.paths.split(",") if name]
    unknown = set(names) - {variant.name for variant in gateway.VARIANTS}
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}; known: {[variant.name for variant in gateway.VARIANTS]}")
    variants = [variant for variant in gateway.VARIANTS if variant.name in names]
    scenarios = [cast(Scenario, name) for name in args.scenarios.split(",") if name]
    options = Options(args.requests, args.warmup, args.idle, args.top, args.keep)
    figures: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    env = {"PYTHONHASHSEED": "0", "OTEL_BSP_SCHEDULE_DELAY": HOUR_MS}
    started_at = time.monotonic()
    with contextlib.ExitStack() as stack:
        work = FilePath(stack.enter_context(tempfile.TemporaryDirectory(prefix="instructions-")))
        trees = trees_to_compare(args.trees, args.ref, args.against, work)
        processes = stack.enter_context(Processes(work / "logs"))
        upstreams = start_upstreams(processes, variants)
        for round_number, label, tree in interleaved(trees, args.rounds):
            for variant in variants:
                point_started = time.monotonic()
                directory = work / slug(label)
                proc, path = start(
                    processes,
                    variant,
                    upstreams,
                    directory,
                    tree,
                    wrap=lambda into, argv: valgrind_argv(into / "callgrind.out.%p", argv),
                    settings=tree_settings(tree, args.requests),
                    env=env,
                    timeout=START_TIMEOUT,
                )
                stem = directory / variant.name.replace("+", "-") / f"callgrind.out.{proc.pid}"
                controlled = Controlled(proc.pid, stem)
                print(
                    f"round {round_number + 1} [{label}] {variant.name}: started under callgrind in "
                    f"{time.monotonic() - point_started:.0f}s",
                    flush=True,
                )
                try:
                    for scenario in scenarios:
                        measured = measure_scenario(controlled, path, scenario, options)
                        if measured is None:
                            continue
                        busy, value = measured
                        figures[(label, variant.name, scenario)].append(value)
                        name = f"{slug(label)}-{variant.name}-{scenario}-round{round_number + 1}.callgrind"
                        if options.keep:
                            options.keep.mkdir(parents=True, exist_ok=True)
                            shutil.copy(busy.dump.path, options.keep / name)
                        if options.top and round_number == 0 and label == next(iter(trees)):
                            print_top(busy.dump.path, options.top, options.requests)
                finally:
                    processes.stop(proc)
    report(figures, list(trees), [variant.name for variant in variants], scenarios)
    print(f"{time.monotonic() - started_at:.0f}s in all")


if __name__ == "__main__":
    main()
