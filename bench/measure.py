"""Measuring one path: check each scenario answers correctly, warm up, then one wrk run per concurrency."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable
from pathlib import Path as FilePath
from typing import Any

from bench import loop_lag
from bench.loadgen import HttpRequest, LoadgenError, run_wrk, with_id
from bench.procs import child_environment
from bench.results_model import PathInfo, Run
from bench.scenarios import Path, Scenario, SetupError, chat_body, request_for

STREAM_COUNT = 150
STREAM_WARMUP = 15


def preflight(request: HttpRequest) -> None:
    """Send the request once; SetupError unless it answers 2xx with the expected text."""
    parts = urllib.parse.urlsplit(request.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=30)
    try:
        body = with_id(request.body, 1)
        connection.request(request.method, parts.path, body=body, headers=dict(request.headers))
        answer = connection.getresponse()
        text = answer.read().decode("utf-8", "replace")
    except OSError as exc:
        raise SetupError(f"{request.url}: {exc}") from exc
    finally:
        connection.close()
    if not 200 <= answer.status < 300 or request.expect not in text:
        raise SetupError(f"{request.url} answered {answer.status}: {text[:300]}")


def measure_path(
    run: Run,
    path: Path,
    scenarios: Iterable[Scenario],
    *,
    wrk: str,
    log: Any = print,
    connections: tuple[int, ...] | None = None,
) -> None:
    """Each scenario at each concurrency (the run's, unless `connections` says otherwise)."""
    points = connections or run.connections
    info = run.paths.setdefault(path.name, PathInfo(path.name, path.kind, path.note))
    if path.proc is not None and info.idle_rss_mib is None:
        info.idle_rss_mib = path.proc.rss_mib()
    for scenario in scenarios:
        try:
            request = request_for(path, scenario)
            preflight(request)
        except SetupError as exc:
            run.skipped[(path.name, scenario)] = str(exc)
            log(f"  {path.name} / {scenario}: not measured: {exc}")
            continue
        try:
            run_wrk(request, max(points), run.warmup, wrk=wrk)
            for point in points:
                before = loop_lag.scrape(path.base, path.metrics_token) if path.metrics_token else None
                result = run_wrk(request, point, run.duration, wrk=wrk)
                run.loads[(path.name, scenario, point)] = result
                after = loop_lag.scrape(path.base, path.metrics_token) if path.metrics_token else None
                if before is not None and after is not None:
                    run.loop_lag[(path.name, scenario, point)] = after - before
                errors = f", errors {result.errors}" if result.error_count else ""
                if result.bad_sample:
                    errors += f"; an answer without {request.expect!r}: {result.bad_sample!r}"
                log(
                    f"  {path.name} / {scenario} c={point}: {result.rps:,.0f} rps, "
                    f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms{errors}"
                )
        except LoadgenError as exc:
            run.skipped[(path.name, scenario)] = str(exc)
            log(f"  {path.name} / {scenario}: wrk failed: {exc}")


def measure_stream(run: Run, path: Path, *, count: int = STREAM_COUNT, log: Any = print) -> None:
    """First-event and inter-chunk timing of paced streams, from `bench.streamclient` in its own process."""
    if "stream" not in path.scenarios:
        return
    summary = stream_timings(run, path, count)
    if isinstance(summary, str):
        run.skipped[(path.name, "stream timings")] = summary
        return
    run.streams[path.name] = summary
    log(
        f"  {path.name} / stream timings: first event p50 {summary['first_event_ms']['p50']:.2f} ms, "
        f"gap p50 {summary['gap_ms']['p50']:.2f} ms, held back {summary['held_back_share']:.1%}, "
        f"errors {summary['errors']}"
    )


def stream_timings(run: Run, path: Path, count: int) -> dict[str, Any] | str:
    """`bench.streamclient`'s summary of `count` paced streams through `path` (after `count // 10` more as a
    warm-up), or why there is none."""
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        body = FilePath(tmp) / "body.json"
        body.write_bytes(chat_body(path.paced_model, stream=True))
        argv = [sys.executable, "-m", "bench.streamclient", "--url", path.base + path.chat_path]
        argv += ["--body-file", str(body), "--count", str(count), "--warmup", str(max(1, count // 10))]
        argv += ["--gap-ms", str(run.stream_gap_ms), "--chunks", str(run.stream_chunks)]
        for name, value in path.llm_headers:
            argv += ["--header", f"{name}: {value}"]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=300, check=False, env=child_environment(None)
        )
    if done.returncode != 0:
        return done.stderr.strip()[-300:] or f"the stream client exited with {done.returncode}"
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary
