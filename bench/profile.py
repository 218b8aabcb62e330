"""A py-spy profile of the gateway under load, summarised: where the CPU time goes, by function and by package.

py-spy samples the running process from outside while wrk loads it, each thread with its OS thread id (`--threads`)
and its C frames (`--native`, which needs py-spy to stop the process for each sample: that costs the process
throughput, and CPU of its own, so the CPU per request comes from a window of the same load just before). Each
thread's CPU, user and system apart, is read from /proc before and after, and the samples are weighed by it
(`bench.attribution.weigh`); the collapsed stacks are summarised as the functions with the most self time and the
packages with the most self and inclusive time, and attributed to their owners (`bench.attribution`) per request.
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

from bench.attribution import Attribution, CpuTime, ProcessCpu, attribute, system_call, weigh
from bench.loadgen import HttpRequest, LoadResult, run_wrk
from bench.stacks import ROOTS, Sample, samples

RATE = 50
"""py-spy's samples a second, of each thread. py-spy stops the process to read its C frames (`--native`): at 200 a
second that cost the gateway 65% of its throughput on this 2-core machine; at 50, 31% (chat) to 54% (mcp-modern)
against unprofiled rounds (py-spy without `--native` at 200 a second: 24% and none). The CPU per request is taken
without py-spy (`profile_under_load`)."""
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


def _self(sample: Sample) -> tuple[str, str, set[str]]:
    """A sample's self-time function, its package, and the packages on its stack (C frames left out: their time is
    their Python caller's, or the kernel's)."""
    call = system_call(sample)
    python = sample.python_frames or sample.frames
    packages = {frame.package for frame in python if frame.file not in BOOTSTRAP}
    if call is not None:
        return f"{call} (system call)", "kernel", packages | {"kernel"}
    return python[-1].name, python[-1].package, packages


def summarise(collapsed: str, top: int = 12, roots: Sequence[str] = ROOTS, cpu: ProcessCpu | None = None) -> str:
    """Markdown: the top functions by self time, and packages by self and by inclusive time (shares of the CPU when
    it is given, of the samples when not)."""
    self_time: Counter[str] = Counter()
    self_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    weighed = weigh(collapsed, cpu, roots)
    for sample, weight in weighed.samples:
        function, package, on_stack = _self(sample)
        self_time[function] += weight
        self_package[package] += weight
        for name in on_stack:
            inclusive[name] += weight
    total = sum(self_time.values()) + weighed.unsampled
    if weighed.count == 0 or total <= 0:
        return "py-spy recorded no samples."
    lines = [f"{weighed.count:,} samples. Self time, top {top} functions:", ""]
    lines += [f"- {weight / total:5.1%} `{name}`" for name, weight in self_time.most_common(top) if weight > 0]
    lines += [
        "",
        "Self time by package: "
        + ", ".join(f"{name} {weight / total:.0%}" for name, weight in self_package.most_common(10) if weight > 0),
    ]
    lines += [
        "",
        "Inclusive time by package (a sample counts once for each package on its stack, start-up frames "
        "left out): "
        + ", ".join(f"{name} {weight / total:.0%}" for name, weight in inclusive.most_common(14) if weight > 0),
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
    """The load's figures while sampled (slowed by py-spy's stops)."""
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
    """Record `pid` while wrk loads it, after a window of the same load without py-spy for the CPU per request:
    py-spy's stops cost a process with many threads CPU of their own (the gateway used 7-36% more per request while
    sampled than without, the floor with its one busy thread no more)."""
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    before = process_times(pid)
    unsampled = load(request, connections, seconds, wrk=wrk)
    cpu_ms = cpu_between(before, process_times(pid)).process.total * 1000 / max(1, unsampled.requests)
    argv = [spy, "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", str(RATE)]
    argv += ["--format", "raw", "--threads", "--native", "--full-filenames", "--output", str(output)]
    recorder = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        before, started = process_times(pid), time.monotonic()
        result = load(request, connections, seconds, wrk=wrk)
        after, elapsed = process_times(pid), time.monotonic() - started
        out, _ = recorder.communicate(timeout=seconds + 30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    if recorder.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed ({recorder.returncode}): {out.decode(errors='replace')[-500:]}")
    cpu = cpu_between(before, after)
    collapsed = output.read_text()
    sampled_ms = cpu.process.total * 1000 / max(1, result.requests)
    text = (
        f"CPU per request without py-spy, over {seconds:g} s of the same load just before: {cpu_ms:.3f} ms at "
        f"{unsampled.rps:,.0f} rps (the figure above); while sampled: {sampled_ms:.3f} ms at {result.rps:,.0f} rps. "
        + cpu_text(pid, cpu, collapsed, elapsed)
    )
    attribution = attribute(collapsed, cpu, cpu_ms, roots=ROOTS)
    return Profile(text + "\n\n" + summarise(collapsed, cpu=cpu), result, attribution)


def cpu_text(pid: int, cpu: ProcessCpu, collapsed: str, elapsed: float) -> str:
    """The figures the shares are weighed by: each thread's CPU, user and system apart, beside its samples."""
    names: dict[int | None, str] = {}
    counts: Counter[int | None] = Counter()
    for sample in samples(collapsed):
        names.setdefault(sample.thread, sample.thread_name)
        counts[sample.thread] += sample.count

    def figures(used: CpuTime) -> str:
        return (
            f"{used.total / elapsed:.1%} of a core (user {used.user / elapsed:.1%}, system {used.system / elapsed:.1%})"
        )

    ranked = sorted(cpu.threads, key=lambda t: (t != pid, -cpu.threads[t].total, t))
    sampled = [t for t in ranked if counts[t]]
    never = [t for t in ranked if not counts[t]]
    described = [f"{names.get(t) or f'thread {t}'} {figures(cpu.threads[t])}, {counts[t]:,} samples" for t in sampled]
    if never:
        quiet = sum(cpu.threads[t].total for t in never)
        threads = f"{len(never)} thread{'s' if len(never) > 1 else ''}"
        described.append(f"{threads} py-spy never sampled, {quiet / elapsed:.1%} of a core together")
    if cpu.ended:
        described.append(f"threads that ended in the window {figures(cpu.beyond_threads())}")
    busy = counts[pid] / (RATE * elapsed)
    return (
        f"CPU used while profiled (from /proc, not sampled): the process {figures(cpu.process)}. By thread, beside "
        f"py-spy's samples of it: {'; '.join(described)}. py-spy found the main thread running or waiting for a "
        f"core {busy:.0%} of the time. The shares below weigh each thread's samples by that thread's own CPU: its "
        "system time over its samples in a system call (the kernel's rows), its user time over the rest."
    )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Ticks:
    """CPU so far: user and system time in clock ticks, and the scheduler's exact run time, in ns, when known."""

    user: int
    system: int
    runtime_ns: int | None = None

    def since(self, then: Ticks | None) -> CpuTime:
        """The CPU used since `then` (since the start, for None), in seconds. /proc counts user and system time in
        ticks (10 ms), which over a few seconds is 1-5% off for a thread, more for a quiet one; the scheduler's
        run time is exact, so it gives the total, and the ticks only split it."""
        start = then or Ticks(0, 0, 0)
        user, system = self.user - start.user, self.system - start.system
        if self.runtime_ns is None or start.runtime_ns is None:
            return CpuTime(user / CLOCK_TICKS, system / CLOCK_TICKS)
        total = (self.runtime_ns - start.runtime_ns) / 1e9
        system_part = system / (user + system) if user + system > 0 else 0.0
        return CpuTime(total * (1 - system_part), total * system_part)


@dataclass(frozen=True)
class Times:
    """A process's CPU so far: its own (every thread's, ended ones too) and each live thread's."""

    process: Ticks
    threads: dict[int, Ticks]


def _ticks(directory: Path) -> Ticks:
    fields = (directory / "stat").read_text().rsplit(")", 1)[1].split()
    user, system = int(fields[11]), int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    try:
        runtime_ns = int((directory / "schedstat").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        runtime_ns = None  # a kernel without CONFIG_SCHED_INFO
    return Ticks(user, system, runtime_ns)


def process_times(pid: int) -> Times:
    threads: dict[int, Ticks] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            threads[int(task.name)] = _ticks(task)
        except OSError:
            continue  # the thread ended
    process = _ticks(Path(f"/proc/{pid}"))
    # /proc/PID/schedstat is the main thread's alone: the process's own figure is its ticks
    return Times(Ticks(process.user, process.system), threads)


def cpu_between(before: Times, after: Times) -> ProcessCpu:
    """The CPU used between two readings: a thread new since `before` used all it has."""
    threads = {tid: now.since(before.threads.get(tid)) for tid, now in after.threads.items()}
    ended = [tid for tid in before.threads if tid not in after.threads]
    return ProcessCpu(threads, after.process.since(before.process), ended=bool(ended))


def thread_cpu(pid: int) -> dict[int, int]:
    """CPU time (user + system, in clock ticks) of each thread of `pid`."""
    return {tid: ticks.user + ticks.system for tid, ticks in process_times(pid).threads.items()}
