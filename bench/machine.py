"""What the report says about the machine and the software: cores, CPU, memory, versions, the commit."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from bench.procs import REPO

PACKAGES = ("uvicorn", "uvloop", "httptools", "starlette", "aiohttp", "mcp", "pydantic", "opentelemetry-sdk", "redis")


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    return "unknown RAM"


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=REPO, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def commit() -> str:
    sha = _run(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return f"{sha}{' + uncommitted changes' if dirty else ''}"


def peer_version(python: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return _run([str(python), "-c", code]) or "?"


def describe(wrk: str) -> dict[str, str]:
    versions = [f"Python {platform.python_version()}", f"isthmus {importlib.metadata.version('isthmus')} ({commit()})"]
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{package} {importlib.metadata.version(package)}")
    wrk_version = _run([wrk, "-v"]).splitlines()
    return {
        "cores": str(os.cpu_count() or "?"),
        "cpu": _cpu(),
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": ", ".join(versions),
        "wrk": wrk_version[0].split(" [")[0].removeprefix("wrk ") if wrk_version else "?",
    }


def load_average() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "?"
