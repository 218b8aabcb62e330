"""A py-spy profile of the gateway under load, summarised: where the CPU time goes, by function and by package.

py-spy samples the running process from outside (`--nonblocking`, so it does not pause it) while wrk loads it;
the collapsed stacks are summarised as the functions with the most self time and the packages with the
most self and inclusive time, and attributed to their owners (`bench.attribution`) per request.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.attribution import Attribution, ThreadCpu, attribute
from bench.loadgen import HttpRequest, LoadResult, run_wrk
from bench.stacks import ROOTS, on_own_thread, samples

RATE = 200
"""py-spy's samples a second, of each thread."""
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


def summarise(collapsed: str, top: int = 12, roots: Sequence[str] = ROOTS) -> str:
    """Markdown: the top functions by self time, and packages by self and by inclusive time."""
    self_time: Counter[str] = Counter()
    self_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, count in samples(collapsed, roots):
        total += count
        self_time[frames[-1].name] += count
        self_package[frames[-1].package] += count
        for package in {frame.package for frame in frames if frame.file not in BOOTSTRAP}:
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


@dataclass(frozen=True)
class Profile:
    summary: str
    """Markdown: the CPU the process used, the top functions, the packages."""
    load: LoadResult
    """The load's figures while sampled (slowed a little by sampling)."""
    attribution: Attribution


def profile_under_load(
    pid: int,
    request: HttpRequest,
    connections: int,
    seconds: float,
    output: Path,
    *,
    wrk: str,
    load: Callable[..., LoadResult] = run_wrk,
) -> Profile:
    """Record `pid` while wrk loads it."""
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [spy, "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", str(RATE)]
    argv += ["--format", "raw", "--nonblocking", "--full-filenames", "--output", str(output)]
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
    cpu = ThreadCpu(
        main=(after.get(pid, 0) - before.get(pid, 0)) / CLOCK_TICKS,
        others=sum(after[t] - before.get(t, 0) for t in after if t != pid) / CLOCK_TICKS,
    )
    collapsed = output.read_text()
    busy = sum(count for frames, count in samples(collapsed) if not on_own_thread(frames)) / (RATE * elapsed)
    text = (
        f"CPU used while profiled (from /proc, not sampled): main thread {cpu.main / elapsed:.0%} of a core, "
        f"its {len(after) - 1} other threads {cpu.others / elapsed:.0%} together. py-spy found the main thread busy "
        f"{busy:.0%} of the time: a thread waiting for a core, or in a system call py-spy does not know as idle "
        "(e.g. SQLite's fsync), is sampled as busy. The shares above weigh the main thread's samples and the other "
        "threads' by the CPU each used; within a thread, time waiting for a core falls where the thread stopped: "
        "in the loop (woken from epoll) or a socket write (on loopback a write can hand the core to the peer it "
        "wakes), so on a loaded machine those shares are overstated."
    )
    return Profile(text + "\n\n" + summarise(collapsed), result, attribute(collapsed, cpu, result.requests))


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
