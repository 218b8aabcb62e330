"""The references a gateway is held to, beside `direct`: the floor (one worker and two), and the stdio server's rate.

- `floor`: `bench.passthrough`, a bare forwarder on the gateway's own stack (uvicorn, uvloop, aiohttp);
- `floor-w2`: the same with two workers, set up as `isthmus serve --workers 2` is, for the workers' scaling;
- `direct` / `mcp-stdio`: `bench.stdio_driver` driving the stdio mock over its pipes, one process, `c` requests in
  flight (the rate a gateway in front of the stdio server is compared to).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from bench.loadgen import LoadResult
from bench.measure import measure_path, measure_stream
from bench.procs import Proc, Processes, child_environment, free_port
from bench.results_model import PathInfo, Run
from bench.scenarios import Path, Scenario

STDIO_MOCK = [sys.executable, "-m", "bench.mock_mcp_stdio"]


def start_floor(processes: Processes, upstreams: tuple[str, str], workers: int = 1) -> Proc:
    """The pass-through (`bench.passthrough`) in front of the mocks, started and listening on every worker."""
    name = "floor" if workers == 1 else f"floor-w{workers}"
    port = free_port()
    llm, mcp = upstreams
    argv = [sys.executable, "-m", "bench.passthrough", "--port", str(port), "--llm", llm, "--mcp", mcp]
    proc = processes.start(name, [*argv, "--workers", str(workers)], port=port)
    try:
        proc.wait_ready(30)
        if workers > 1:
            from bench.gateway import wait_listening

            wait_listening(proc, workers, 30)
    except BaseException:
        processes.stop(proc)
        raise
    return proc


def measure_floor(
    run: Run,
    processes: Processes,
    upstreams: tuple[str, str],
    scenarios: tuple[Scenario, ...],
    *,
    wrk: str,
    streams: int,
    log: Callable[[str], None],
    workers: int = 1,
    connections: tuple[int, ...] | None = None,
    profile: Callable[[Path], None] | None = None,
) -> None:
    """The pass-through in front of the mocks, with `workers` workers, measured like any path; `profile` is
    called with the path once it has been measured, while it still runs."""
    name = "floor" if workers == 1 else f"floor-w{workers}"
    log(f"{name}: a bare pass-through on uvicorn + aiohttp" + (f", {workers} workers" if workers > 1 else ""))
    proc = start_floor(processes, upstreams, workers)
    try:
        path = Path(name, "floor", proc.url, proc=proc)
        measure_path(run, path, scenarios, wrk=wrk, log=log, connections=connections)
        if "stream" in scenarios and workers == 1:
            measure_stream(run, path, count=streams, log=log)
        if profile is not None:
            profile(path)
        run.paths[name].peak_rss_mib = proc.peak_rss_mib()
    finally:
        processes.stop(proc)


def measure_stdio_direct(run: Run, *, log: Callable[[str], None]) -> None:
    """The stdio mock's own rate at each of the run's concurrencies, as the `direct` figures of `mcp-stdio`."""
    log("direct to the stdio mock, from a driver process")
    run.paths.setdefault("direct", PathInfo("direct", "direct"))
    for connections in run.connections:
        argv = [sys.executable, "-m", "bench.stdio_driver", "--connections", str(connections)]
        argv += ["--duration", f"{run.duration:g}", "--warmup", f"{run.warmup:g}", "--", *STDIO_MOCK]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=run.duration + run.warmup + 60,
            check=False,
            env=child_environment(None),
        )
        if done.returncode != 0:
            run.skipped[("direct", "mcp-stdio")] = f"the stdio driver failed: {done.stderr.strip()[-300:]}"
            log(f"  direct / mcp-stdio: the driver failed: {done.stderr.strip()[-300:]}")
            return
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        result = LoadResult(**figures)
        run.loads[("direct", "mcp-stdio", connections)] = result
        log(
            f"  direct / mcp-stdio c={connections}: {result.rps:,.0f} rps, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms, bad {result.errors['bad']}"
        )
