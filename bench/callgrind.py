"""A process run under `valgrind --tool=callgrind`, its counters driven from outside, and its dumps read.

The process starts with instrumentation off (`--instr-atstart=no`: valgrind runs it about 5x slower instead of 50x,
and counts nothing). `callgrind_control` then reaches it through valgrind's gdbserver (vgdb) to turn
instrumentation on, zero the counters and dump them; each dump is a file `<out>.<n>` with the instructions executed
(`Ir`) by every thread since the last zero, whatever the machine's load: the figure is a count, not a time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

VALGRIND_OPTIONS = (
    "--tool=callgrind",
    "--instr-atstart=no",
    "--trace-children=no",
    # Threads take turns on valgrind's one lock in a fixed order instead of whoever grabs it: the event loop and
    # aiosqlite's thread hand work to each other on every request.
    "--fair-sched=yes",
    "--vgdb=yes",
)
CONTROL_TIMEOUT = 60.0
"""Seconds a `callgrind_control` command may take: vgdb waits for the process to reach a point where it can act."""


class CallgrindError(RuntimeError):
    """valgrind is missing, a control command failed, or a dump did not appear or cannot be read."""


def missing_tools() -> list[str]:
    """The valgrind programs this module needs that are not on PATH."""
    return [tool for tool in ("valgrind", "callgrind_control", "callgrind_annotate") if shutil.which(tool) is None]


def valgrind_argv(out_file: Path, argv: Sequence[str]) -> list[str]:
    """`argv` under callgrind, its dumps written as `out_file.<n>` (`%p` in the name stands for the pid)."""
    return ["valgrind", *VALGRIND_OPTIONS, f"--callgrind-out-file={out_file}", *argv]


@dataclass(frozen=True)
class Dump:
    """One callgrind output file: the events it counts and their totals over every thread."""

    path: Path
    totals: dict[str, int]

    @property
    def instructions(self) -> int:
        """Instructions executed (`Ir`)."""
        if "Ir" not in self.totals:
            raise CallgrindError(f"{self.path}: no Ir among the events {sorted(self.totals)}")
        return self.totals["Ir"]


def parse_totals(text: str, source: str = "callgrind output") -> dict[str, int]:
    """The `events:` names and their `totals:` (else `summary:`) counts in callgrind's output format.

    `totals:` is the sum of the costs the file lists; `summary:` should be the same, but a dump requested while
    the process waits in a system call gives a `summary:` that leaves out part of what the lines add up to.
    """
    events: list[str] | None = None
    counts: dict[str, list[int]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep or key not in ("events", "totals", "summary"):
            continue
        if key == "events":
            events = value.split()
        else:
            try:
                counts[key] = [int(field) for field in value.split()]
            except ValueError as exc:
                raise CallgrindError(f"{source}: a {key}: line that is not numbers: {line!r}") from exc
    if events is None:
        raise CallgrindError(f"{source}: no events: line (not callgrind output?)")
    found = counts.get("totals") or counts.get("summary")
    if found is None:
        raise CallgrindError(f"{source}: neither a totals: nor a summary: line (a dump still being written?)")
    # Trailing events with no cost may be left out of a cost line.
    return {name: found[index] if index < len(found) else 0 for index, name in enumerate(events)}


def read_dump(path: Path) -> Dump:
    return Dump(path, parse_totals(path.read_text(errors="replace"), str(path)))


class Controlled:
    """A process running under callgrind, with the pid `callgrind_control` knows it by and its dump files' stem."""

    def __init__(self, pid: int, out_stem: Path) -> None:
        self.pid = pid
        self.out_stem = out_stem
        """`--callgrind-out-file` with the pid filled in: dump n is `<out_stem>.<n>`."""
        self.dumps = 0

    def _control(self, *args: str) -> None:
        argv = ["callgrind_control", *args, str(self.pid)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=CONTROL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise CallgrindError(f"`{' '.join(argv)}` took more than {CONTROL_TIMEOUT:g}s") from exc
        if done.returncode != 0 or "OK" not in done.stdout:
            raise CallgrindError(f"`{' '.join(argv)}` failed ({done.returncode}): {(done.stdout + done.stderr)[-400:]}")

    def instrument(self, on: bool) -> None:
        """Turn instrumentation (and so counting) on or off."""
        self._control("--instr=" + ("on" if on else "off"))

    def zero(self) -> None:
        """Reset every thread's counters."""
        self._control("--zero")

    def dump(self, timeout: float = CONTROL_TIMEOUT) -> Dump:
        """Write the counters since the last zero (or dump) to the next file, and read it."""
        self._control("--dump")
        self.dumps += 1
        path = Path(f"{self.out_stem}.{self.dumps}")
        deadline = time.monotonic() + timeout
        while True:
            # The reply comes once the file is written; the loop covers a file system slow to show it.
            try:
                return read_dump(path)
            except (OSError, CallgrindError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)


def count_paused_run(driver: subprocess.Popen[str], counted: Controlled, *, timeout: float = 300) -> int:
    """The instructions `counted` runs while `driver` does its measured part, `driver` speaking a small protocol on
    its standard streams: it prints `ready` once warmed up, waits for a line, does the measured part, prints `done`,
    waits for a line again and ends. Counting is turned on and zeroed between `ready` and the go-ahead."""
    assert driver.stdin is not None and driver.stdout is not None
    try:
        if driver.stdout.readline().strip() != "ready":
            raise CallgrindError("the measuring process did not get ready")
        counted.instrument(True)
        counted.zero()
        driver.stdin.write("go\n")
        driver.stdin.flush()
        if driver.stdout.readline().strip() != "done":
            raise CallgrindError("the measuring process did not finish its measured part")
        instructions = counted.dump().instructions
        driver.stdin.write("stop\n")
        driver.stdin.flush()
        driver.wait(timeout=timeout)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    return instructions


_SUMMARY_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*$")


def top_functions(dump: Path, count: int, *, inclusive: bool) -> list[tuple[int, str]]:
    """The `count` functions with the most instructions in `dump`, by `callgrind_annotate`: self cost, or inclusive
    (the function and everything it called), names shortened (`ceval.c:_PyEval_EvalFrameDefault [libpython3.11.so]`).

    Inclusive rows of a recursion's inner levels (`name'2`) and of unnamed code count the cycle's cost again, up
    to many times the whole dump's: they are left out."""
    argv = ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100", str(dump)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise CallgrindError(f"callgrind_annotate failed ({done.returncode}): {done.stderr[-400:]}")
    rows = [(cost, short_name(name)) for cost, name in parse_annotate(done.stdout)]
    if inclusive:
        rows = [(cost, name) for cost, name in rows if "'" not in name and not name.startswith("???")]
    return rows[:count]


def short_name(name: str) -> str:
    """`file:function [object]` with the directories of the file and the object left out."""
    where, _, shared_object = name.partition(" [")
    file, sep, function = where.rpartition(":")
    short = f"{file.rsplit('/', 1)[-1]}{sep}{function}"
    return f"{short} [{shared_object.rstrip(']').rsplit('/', 1)[-1]}]" if shared_object else short


def parse_annotate(text: str) -> list[tuple[int, str]]:
    """The (instructions, function) rows of `callgrind_annotate`'s function table, in its order (most first)."""
    rows: list[tuple[int, str]] = []
    for line in text.splitlines():
        match = _SUMMARY_LINE.match(line)
        if match is None or "PROGRAM TOTALS" in line:
            continue
        name = match.group(2)
        if ":" not in name and "[" not in name:  # the header's numbers ("Thresholds: 100") are not rows
            continue
        rows.append((int(match.group(1).replace(",", "")), name))
    return rows
