"""`make bench`: measure every path against the same mocks, in one run, and write the report.

Order: the mocks start; the direct path is measured (which is also the mocks' capacity, and the stdio mock's rate
from a driver process), then the SDK's MCP server for comparison, the floor (one worker, then two), each Isthmus
variant, the shares the targets judge measured again with the compared paths taking turns (`bench.interleaved`),
and the peers when installed. Each path's process is stopped as soon as it has been measured, so paths never
compete for the cores (the interleaved ones run together, each idle but for its turn). Everything started is
stopped on exit, on an error and on Ctrl-C.

    python -m bench [--duration 5] [--warmup 1.5] [--connections 1,16] [--workers-connections 16,64] [--paths ...]
                    [--peers auto|require|off]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path as FilePath

from bench import cache as bench_cache, gateway, interleaved, machine, peers
from bench.attribution_report import profile_title
from bench.loadgen import HttpRequest, LoadgenError, LoadResult, ensure_wrk, run_wrk
from bench.measure import measure_path, measure_stream, preflight, stream_timings
from bench.procs import REPO, Proc, Processes, StartError, free_port
from bench.profile import RATE, profile_under_load
from bench.references import measure_floor, measure_stdio_direct, start_floor
from bench.report import render
from bench.results_model import Run
from bench.scenarios import HTTP_SCENARIOS, SCENARIOS, Path, Scenario, SetupError, request_for

GATEWAY_SCENARIOS: dict[str, tuple[Scenario, ...]] = {
    gateway.PLAIN.name: HTTP_SCENARIOS,
    gateway.GOVERNED.name: ("chat", "mcp-modern"),
    gateway.TRACED.name: ("chat", "mcp-modern"),
    gateway.STDIO.name: ("mcp-stdio",),
    gateway.WORKERS.name: ("chat",),
    gateway.GUARDED.name: ("chat", "stream"),
}
PROFILED: dict[str, tuple[Scenario, ...]] = {
    "floor": HTTP_SCENARIOS,
    gateway.PLAIN.name: HTTP_SCENARIOS,
    gateway.GOVERNED.name: ("chat",),
    gateway.TRACED.name: ("chat",),
    gateway.STDIO.name: ("mcp-stdio",),
}
"""The profiles taken (c=16): each target the report judges points to one of them, set beside the floor's."""
INTERLEAVED: dict[Scenario, tuple[str, ...]] = {
    "chat": ("floor", gateway.PLAIN.name, gateway.GOVERNED.name, gateway.TRACED.name, gateway.GUARDED.name),
    "mcp-modern": ("floor", gateway.PLAIN.name),
    "stream": ("floor", gateway.PLAIN.name),
}
"""The paths whose c=16 shares (and, for `stream`, first events) the targets judge, measured again taking turns
(`bench.interleaved`)."""
CACHE_PATH = "isthmus-cache"
"""The response cache scenario (`bench.cache`): three gateways of its own, measured after the other variants."""
ALL_PATHS = ("direct", "sdk-mcp", "floor", "floor-w2", *GATEWAY_SCENARIOS, CACHE_PATH, *peers.PEERS)
REDIS_URL = "redis://127.0.0.1:6379/15"
"""Database 15, so the benchmark's counters never mix with the tests' (database 0)."""


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured point")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds of warm-up per path and scenario")
    parser.add_argument("--connections", default="1,16", help="concurrencies, comma-separated (1 must be one)")
    parser.add_argument(
        "--workers-connections", default="16,64", help="concurrencies of the two-worker paths (isthmus-w2, floor-w2)"
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--paths", default=",".join(ALL_PATHS), help=f"any of {', '.join(ALL_PATHS)}")
    parser.add_argument(
        "--peers",
        choices=["auto", "require", "off"],
        default="auto",
        help="auto: measure the peers whose virtual environments exist (make bench-peers)",
    )
    parser.add_argument("--streams", type=int, default=150, help="paced streams per path for the timings")
    parser.add_argument(
        "--cache-requests", type=int, default=1000, help=f"rounds of each series of the {CACHE_PATH} scenario"
    )
    parser.add_argument(
        "--interleaved-rounds",
        type=int,
        default=interleaved.ROUNDS,
        help="rounds of the interleaved shares (0: none; the targets then use the paths' own figures)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--out", type=FilePath, default=REPO / "bench" / "results")
    parser.add_argument("--work", type=FilePath, help="keep logs, configs and raw profiles here (default: a temp dir)")
    args = parser.parse_args(argv)
    args.connections = tuple(int(c) for c in args.connections.split(","))
    args.workers_connections = tuple(int(c) for c in args.workers_connections.split(","))
    args.scenarios = tuple(s for s in args.scenarios.split(",") if s)
    args.paths = tuple(p for p in args.paths.split(",") if p)
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            parser.error(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    for path in args.paths:
        if path not in ALL_PATHS:
            parser.error(f"unknown path {path!r}; choose from {', '.join(ALL_PATHS)}")
    if 1 not in args.connections:
        parser.error("--connections must include 1: added latency is measured at concurrency 1")
    return args


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _ensure_redis(processes: Processes) -> str | None:
    """Redis on 127.0.0.1:6379: the one running, or one started here (when redis-server is installed)."""
    if _redis_reachable():
        return REDIS_URL
    import shutil

    server = shutil.which("redis-server")
    if server is None:
        return None
    argv = [server, "--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    processes.start("redis", argv, port=6379).wait_ready(15)
    return REDIS_URL


def _python_proc(processes: Processes, name: str, module: str, *extra: str) -> tuple[int, str]:
    port = free_port()
    proc = processes.start(name, [sys.executable, "-m", module, "--port", str(port), *extra], port=port)
    proc.wait_ready(30)
    return port, proc.url


def _profile(
    run: Run,
    path: Path,
    pid: int,
    work: FilePath,
    wrk: str,
    log: Callable[[str], None],
    scenarios: tuple[Scenario, ...],
) -> None:
    for scenario in scenarios:
        if (path.name, scenario, 16) not in run.loads:
            continue
        try:
            request = request_for(path, scenario)
            output = work / f"profile-{path.name}-{scenario}.txt"
            profile = profile_under_load(pid, request, 16, max(run.duration, 6.0), output, wrk=wrk)
        except (RuntimeError, SetupError, LoadgenError) as exc:
            run.notes.append(f"py-spy profile of {path.name} / {scenario} failed: {exc}")
            continue
        title = profile_title(path.name, scenario)
        run.profiles[title] = f"{profile.load.rps:,.0f} rps while sampled at {RATE} Hz.\n\n{profile.summary}"
        run.attributions[title] = profile.attribution
        log(f"  profiled {scenario}: {profile.summary.splitlines()[0][:120]}")


def execute(args: argparse.Namespace, wrk: str, work: FilePath, log: Callable[[str], None]) -> Run:
    run = Run(connections=args.connections, duration=args.duration, warmup=args.warmup)
    run.machine = machine.describe(wrk)
    load_before = machine.load_average()
    wanted = set(args.paths)
    scenarios: tuple[Scenario, ...] = args.scenarios
    with Processes(work / "logs") as processes:
        log("starting the mocks")
        _, llm_url = _python_proc(
            processes,
            "mock-llm",
            "bench.mock_llm",
            "--gap-ms",
            str(run.stream_gap_ms),
            "--chunks",
            str(run.stream_chunks),
        )
        _, mcp_url = _python_proc(processes, "mock-mcp", "bench.mock_mcp")
        direct = Path("direct", "direct", llm_url, mcp_base=mcp_url)
        if "direct" in wanted:
            log("direct to the mocks")
            measure_path(run, direct, [s for s in scenarios if s in HTTP_SCENARIOS], wrk=wrk, log=log)
            if "stream" in scenarios:
                measure_stream(run, direct, count=args.streams, log=log)
            if "mcp-stdio" in scenarios:
                measure_stdio_direct(run, log=log)
        if "sdk-mcp" in wanted:
            _sdk_capacity(run, processes, wrk, log)
        http_scenarios = tuple(s for s in scenarios if s in HTTP_SCENARIOS)
        if "floor" in wanted:

            def profile_floor(floor: Path) -> None:
                if not args.no_profile and floor.proc is not None:
                    _profile(run, floor, floor.proc.pid, work, wrk, log, PROFILED["floor"])

            measure_floor(
                run,
                processes,
                (llm_url, mcp_url),
                http_scenarios,
                wrk=wrk,
                streams=args.streams,
                log=log,
                profile=profile_floor,
            )
        if "floor-w2" in wanted and "chat" in scenarios:
            measure_floor(
                run,
                processes,
                (llm_url, mcp_url),
                ("chat",),
                wrk=wrk,
                streams=args.streams,
                log=log,
                workers=2,
                connections=args.workers_connections,
            )
        upstreams = _services(processes, args, gateway.Upstreams(llm_url, mcp_url))
        _gateways(run, processes, args, wrk, work, upstreams, log)
        _interleave(run, processes, args, wrk, work, upstreams, log)
        if CACHE_PATH in wanted and args.cache_requests > 0:
            _cache(run, processes, work, args.cache_requests, log)
        for peer in peers.PEERS:
            if peer in wanted and args.peers != "off":
                peers.measure(run, peer, processes, upstreams, work, args, wrk, log)
    run.notes.append(
        f"Load average (1 min) before the run {load_before}, after {machine.load_average()}: anything else running "
        "on the machine competes for its cores and shows up in the figures."
    )
    return run


def _cache(run: Run, processes: Processes, work: FilePath, requests: int, log: Callable[[str], None]) -> None:
    log(f"{CACHE_PATH}: exact and semantic hits, misses with the cache on and off ({requests:,} rounds)")
    began = time.monotonic()
    try:
        run.cache = bench_cache.measure(processes, work, requests, log)
    except (StartError, RuntimeError, OSError) as exc:
        run.skipped[(CACHE_PATH, "cache")] = f"the cache scenario failed: {exc}"
        log(f"  {CACHE_PATH} failed: {exc}")
        return
    log(f"  took {time.monotonic() - began:.0f} s; " + "; ".join(bench_cache.lines(run.cache)[-5:-2]))


def _sdk_capacity(run: Run, processes: Processes, wrk: str, log: Callable[[str], None]) -> None:
    log("the official SDK's MCP server alone, for comparison with the hand-rolled mock")
    port = free_port()
    proc = processes.start("sdk-mcp", [sys.executable, "-m", "bench.sdk_mcp", "--port", str(port)], port=port)
    try:
        proc.wait_ready(30)
        request = request_for(Path("sdk-mcp", "direct", proc.url), "mcp-modern")
        preflight(request)
        run_wrk(request, 16, run.warmup, wrk=wrk)
        result = run_wrk(request, 16, run.duration, wrk=wrk)
        run.mock_capacity["the official SDK's `MCPServer` (JSON responses, uvicorn + uvloop), mcp-modern"] = result
        log(f"  sdk-mcp / mcp-modern c=16: {result.rps:,.0f} rps")
    except (StartError, SetupError, LoadgenError) as exc:
        run.notes.append(f"The SDK MCP server comparison failed: {exc}")
    finally:
        processes.stop(proc)


def _services(processes: Processes, args: argparse.Namespace, upstreams: gateway.Upstreams) -> gateway.Upstreams:
    """`upstreams` with Redis and the OTLP sink, when a wanted variant needs them (started here when missing)."""
    variants = [v for v in gateway.VARIANTS if v.name in args.paths]
    redis = _ensure_redis(processes) if any(v.governance or v.workers > 1 for v in variants) else None
    sink_url = None
    if gateway.TRACED in variants:
        _, sink_url = _python_proc(processes, "otlp-sink", "bench.otlp_sink")
    return gateway.Upstreams(upstreams.llm, upstreams.mcp, redis=redis, otlp=sink_url)


def _gateway_path(started: gateway.Gateway, scenarios: tuple[Scenario, ...]) -> Path:
    """The path a started gateway is measured by, with its key."""
    auth = (("Authorization", f"Bearer {started.key}"),)
    return Path(
        started.variant.name,
        "gateway",
        started.proc.url,
        model=f"{gateway.PROVIDER}/mock-gpt",
        paced_model=f"{gateway.PROVIDER}/mock-gpt-paced",
        llm_headers=auth,
        mcp_headers=auth,
        scenarios=frozenset(scenarios),
        proc=started.proc,
        metrics_token=started.metrics_token if started.variant.workers == 1 else None,
    )


def _gateways(
    run: Run,
    processes: Processes,
    args: argparse.Namespace,
    wrk: str,
    work: FilePath,
    upstreams: gateway.Upstreams,
    log: Callable[[str], None],
) -> None:
    variants = [v for v in gateway.VARIANTS if v.name in args.paths]
    for variant in variants:
        scenarios = tuple(s for s in GATEWAY_SCENARIOS[variant.name] if s in args.scenarios)
        if not scenarios:
            continue
        if (variant.governance or variant.workers > 1) and upstreams.redis is None:
            for scenario in scenarios:
                run.skipped[(variant.name, scenario)] = "Redis is not reachable on 127.0.0.1:6379 and not installed"
            continue
        log(f"{variant.name}")
        try:
            started = gateway.start(processes, variant, upstreams, work)
        except StartError as exc:
            for scenario in scenarios:
                run.skipped[(variant.name, scenario)] = f"the gateway did not start: {exc}"
            log(f"  {variant.name} did not start: {exc}")
            continue
        path = _gateway_path(started, scenarios)
        many = args.workers_connections if variant.workers > 1 else None
        measure_path(run, path, scenarios, wrk=wrk, log=log, connections=many)
        if variant is gateway.PLAIN and "stream" in scenarios:
            measure_stream(run, path, count=args.streams, log=log)
        if not args.no_profile and variant.name in PROFILED:
            # The plain variant shows the gateway's own costs, the others what governance, telemetry, stdio add.
            _profile(run, path, started.proc.pid, work, wrk, log, PROFILED[variant.name])
        run.paths[variant.name].peak_rss_mib = started.proc.peak_rss_mib()
        processes.stop(started.proc)
    if upstreams.otlp is not None:
        with urllib.request.urlopen(upstreams.otlp + "/stats", timeout=5) as answer:
            run.spans = json.loads(answer.read())


def _interleave(
    run: Run,
    processes: Processes,
    args: argparse.Namespace,
    wrk: str,
    work: FilePath,
    upstreams: gateway.Upstreams,
    log: Callable[[str], None],
) -> None:
    """The shares the targets judge, and the stream's first event against the floor's, measured again with the
    compared paths running together and taking turns (`bench.interleaved`)."""
    wanted = {
        scenario: [p for p in paths if p in args.paths]
        for scenario, paths in INTERLEAVED.items()
        if scenario in args.scenarios
    }
    wanted = {scenario: paths for scenario, paths in wanted.items() if len(paths) > 1}
    if args.interleaved_rounds < 1 or not wanted:
        return
    log(f"interleaved: {args.interleaved_rounds} rounds of {interleaved.WINDOW:g} s per path, c=16")
    started: list[Proc] = []
    try:
        paths: dict[str, Path] = {}
        for name in dict.fromkeys(p for names in wanted.values() for p in names):
            if name == "floor":
                proc = start_floor(processes, (upstreams.llm, upstreams.mcp))
                started.append(proc)
                paths[name] = Path(name, "floor", proc.url, proc=proc)
                continue
            variant = next(v for v in gateway.VARIANTS if v.name == name)
            if variant.governance and upstreams.redis is None:
                continue
            gateway_started = gateway.start(processes, variant, upstreams, work / "interleaved")
            started.append(gateway_started.proc)
            paths[name] = _gateway_path(gateway_started, GATEWAY_SCENARIOS[name])
        for scenario, names in wanted.items():
            if scenario == "stream":
                run.first_events = _first_events(run, [paths[name] for name in names], args.interleaved_rounds, log)
                continue
            requests = {name: request_for(paths[name], scenario) for name in names if name in paths}
            for request in requests.values():
                preflight(request)

            def load(request: HttpRequest, connections: int, seconds: float) -> LoadResult:
                return run_wrk(request, connections, seconds, wrk=wrk)

            run.interleaved[scenario] = interleaved.measure(
                requests, scenario, 16, load, rounds=args.interleaved_rounds, warmup=run.warmup, log=log
            )
    except (StartError, SetupError, LoadgenError, RuntimeError) as exc:
        run.notes.append(f"The interleaved measurements were not all made: {exc}")
        log(f"  interleaved: failed: {exc}")
    finally:
        for proc in started:
            processes.stop(proc)


def _first_events(run: Run, paths: list[Path], rounds: int, log: Callable[[str], None]) -> interleaved.FirstEvents:
    """Paced streams through each path in turns, `STREAMS_PER_TURN` a turn: each turn's first-event p50."""
    by_name = {path.name: path for path in paths}

    def one(name: str) -> float:
        summary = stream_timings(run, by_name[name], interleaved.STREAMS_PER_TURN)
        if isinstance(summary, str):
            raise RuntimeError(f"the stream timings of {name} failed: {summary}")
        if summary["errors"]:
            raise RuntimeError(f"{name} answered {summary['errors']} streams with errors")
        p50: float = summary["first_event_ms"]["p50"]
        return p50

    figures = interleaved.take_turns(list(by_name), rounds, one, lambda p50: f"{p50:.2f} ms", "stream first event", log)
    return interleaved.FirstEvents(interleaved.STREAMS_PER_TURN, figures)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    began = time.monotonic()
    try:
        wrk = ensure_wrk()
    except LoadgenError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.peers == "require":
        missing = [peer for peer in peers.PEERS if not peers.installed(peer)]
        if missing:
            print(f"bench: peers not installed: {', '.join(missing)} (run `make bench-peers`)", file=sys.stderr)
            return 2

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        if args.work is None:
            work = FilePath(stack.enter_context(tempfile.TemporaryDirectory(prefix="isthmus-bench-")))
        else:
            work = args.work.resolve()
            work.mkdir(parents=True, exist_ok=True)
        try:
            run = execute(args, wrk, work, log)
        except KeyboardInterrupt:
            log("bench: interrupted; every process it started has been stopped")
            return 130
        except StartError as exc:
            log(f"bench: {exc}")
            return 1
    run.seconds = time.monotonic() - began
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    text = render(run, date)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (f"{date}.md", "latest.md"):
        (args.out / name).write_text(text + "\n")
    print(text)
    log(f"bench: wrote {args.out / f'{date}.md'} and latest.md in {run.seconds:.0f} s")
    return 0
