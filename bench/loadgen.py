"""wrk, the load generator: installing it when missing, running one measurement, reading its summary.

wrk runs in its own process (with one thread, so it takes one core at most), sends one fixed request over `c`
keep-alive connections, and prints the summary `bench/lua/bench.lua` writes in its `done()` hook as one JSON line:
requests, latency percentiles in microseconds, and errors (socket errors, non-2xx answers, and "bad" answers that
lack the expected text).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).parent / "lua" / "bench.lua"
MARKER = "BENCH_JSON "


class LoadgenError(RuntimeError):
    """wrk is missing and cannot be installed, or a run produced no summary."""


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's packages when missing (needs root and apt-get)."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise LoadgenError("wrk is not installed and apt-get is not available: install wrk (https://github.com/wg/wrk)")
    if os.geteuid() != 0:
        raise LoadgenError("wrk is not installed: run `sudo apt-get install wrk`, or run the benchmark as root")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise LoadgenError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    found = shutil.which("wrk")
    if not found:
        raise LoadgenError("apt-get installed wrk but it is not on PATH")
    return found


@dataclass(frozen=True)
class HttpRequest:
    """One request the load generator repeats."""

    url: str
    method: str = "POST"
    body: bytes = b""
    """Sent as is, except that each `__BENCH_ID__` becomes a number unique to the request (see `with_id`)."""
    headers: tuple[tuple[str, str], ...] = ()
    expect: str = ""
    """Text every successful answer must contain."""


def with_id(body: bytes, request_id: int) -> bytes:
    """The body as one request of a run sends it."""
    return body.replace(b"__BENCH_ID__", str(request_id).encode())


@dataclass(frozen=True)
class LoadResult:
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    bad_sample: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def parse_summary(stdout: str, connections: int) -> LoadResult:
    """The LoadResult in wrk's output; LoadgenError when the script's JSON line is missing."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            latency = data["latency_us"]
            return LoadResult(
                connections=connections,
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                p50_ms=latency["p50"] / 1000,
                p90_ms=latency["p90"] / 1000,
                p99_ms=latency["p99"] / 1000,
                mean_ms=latency["mean"] / 1000,
                max_ms=latency["max"] / 1000,
                errors={name: int(count) for name, count in data["errors"].items()},
                bad_sample=str(data.get("bad_sample", "")),
            )
    raise LoadgenError(f"wrk printed no summary:\n{stdout[-1000:]}")


def run_wrk(request: HttpRequest, connections: int, seconds: float, *, wrk: str = "wrk") -> LoadResult:
    """One closed-loop measurement: `connections` connections for `seconds` seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(request.body)
        header_file = Path(tmp) / "headers"
        header_file.write_text("".join(f"{name}: {value}\n" for name, value in request.headers))
        env = {
            **os.environ,
            "BENCH_METHOD": request.method,
            "BENCH_BODY_FILE": str(body_file) if request.body else "",
            "BENCH_HEADER_FILE": str(header_file),
            "BENCH_EXPECT": request.expect,
        }
        argv = [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(SCRIPT),
            request.url,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise LoadgenError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return parse_summary(done.stdout, connections)
