"""A py-spy profile of the gateway under load, summarised: where the CPU time goes, by function and by package.

py-spy samples the running process from outside (`--nonblocking`, so it does not pause it) while wrk loads it;
the collapsed stacks are summarised as the functions with the most self time and the packages with the
most self and inclusive time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.loadgen import HttpRequest, LoadResult, run_wrk

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
BOOTSTRAP = frozenset(
    {
        "isthmus/cli.py",
        "isthmus",
        "uvicorn/main.py",
        "uvicorn/server.py",
        "asyncio/runners.py",
        "asyncio/base_events.py",
        "asyncio/events.py",
        "threading.py",
        "<frozen runpy>",
    }
)
"""Frames every sample of a thread passes through (`isthmus` is the console script): counting them says nothing."""


def package_of(file: str) -> str:
    """py-spy names files relative to `sys.path`, so the first component is the top-level package."""
    if file.startswith("<"):
        return "stdlib (frozen)"
    head = file.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in file or file.endswith(".py") else head


def _parse(frame: str) -> tuple[str, str, str]:
    """The function with its file, the file, and the package."""
    match = _FRAME.match(frame)
    if match is None:
        return frame, "", "other"
    file = match["file"]
    return f"{match['func']} ({file})", file, package_of(file)


def summarise(collapsed: str, top: int = 12) -> str:
    """Markdown: the top functions by self time, and packages by self and by inclusive time."""
    self_time: Counter[str] = Counter()
    self_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_parse(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        self_time[frames[-1][0]] += count
        self_package[frames[-1][2]] += count
        for package in {package for _, file, package in frames if file not in BOOTSTRAP}:
            inclusive[package] += count
    if total == 0:
        return "py-spy recorded no samples."
    lines = [f"{total:,} samples. Self time, top {top} functions:", ""]
    lines += [f"- {count / total:5.1%} `{name}`" for name, count in self_time.most_common(top)]
    lines += [
        "",
        "Self time by package: "
        + ", ".join(f"{name} {count / total:.0%}" for name, count in self_package.most_common(10)),
    ]
    lines += [
        "",
        "Inclusive time by package (a sample counts once for each package on its stack, start-up frames "
        "left out): " + ", ".join(f"{name} {count / total:.0%}" for name, count in inclusive.most_common(14)),
    ]
    return "\n".join(lines)


def py_spy() -> str | None:
    """The py-spy next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_under_load(
    pid: int,
    request: HttpRequest,
    connections: int,
    seconds: float,
    output: Path,
    *,
    wrk: str,
    load: Callable[..., LoadResult] = run_wrk,
) -> tuple[str, LoadResult]:
    """Record `pid` while wrk loads it; the summary, and the load's figures (slowed a little by sampling)."""
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [spy, "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", "200"]
    argv += ["--format", "raw", "--nonblocking", "--output", str(output)]
    recorder = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        before, started = thread_cpu(pid), time.monotonic()
        result = load(request, connections, seconds, wrk=wrk)
        after, elapsed = thread_cpu(pid), time.monotonic() - started
        out, _ = recorder.communicate(timeout=seconds + 30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    if recorder.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed ({recorder.returncode}): {out.decode(errors='replace')[-500:]}")
    main = (after.get(pid, 0) - before.get(pid, 0)) / CLOCK_TICKS / elapsed
    others = sum(after[t] - before.get(t, 0) for t in after if t != pid) / CLOCK_TICKS / elapsed
    cpu = (
        f"CPU used while profiled (from /proc, not sampled): main thread {main:.0%} of a core, "
        f"its {len(after) - 1} other threads {others:.0%} together. A thread waiting in a system call py-spy does not "
        "know as idle (e.g. SQLite's fsync) shows up in the samples all the same."
    )
    return cpu + "\n\n" + summarise(output.read_text()), result


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, int]:
    """CPU time (user + system, in clock ticks) of each thread of `pid`."""
    times: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        times[int(task.name)] = int(fields[11]) + int(fields[12])
    return times
