"""py-spy's raw output read: each line a thread, a stack of frames (outermost first) and how many samples it had.

py-spy records with `--threads`, so each stack starts with its thread ("thread (12873): MainThread": the OS thread
id, as /proc/PID/task lists it, and the Python thread's name), and with `--native`, so the C frames between the
Python ones are there too: uvloop's and libuv's, CPython's, and the C library's innermost, where a system call is
made (`write (/usr/lib/x86_64-linux-gnu/libc.so.6)`).

py-spy records with `--full-filenames`, and the files are shortened here to their path inside their package
("json/encoder.py", "aiohttp/client.py"), as py-spy's own short names are, with one difference: py-spy stops at the
first directory without an `__init__.py`, so a namespace package such as OpenTelemetry's lost its name
("trace/__init__.py", which reads as the standard library's `trace`). Shortening against `sys.path` keeps it
("opentelemetry/sdk/trace/__init__.py").
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.procs import REPO

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file><[^<>]*>|[^()]*?)(?::\d+)?\)$")
_THREAD = re.compile(r"^thread \((?P<tid>\d+)\)(?:: (?P<name>.*))?$")
_NATIVE_FILE = re.compile(r"(\.(c|h|cc|cpp|cxx|hpp|pyx|pxd|pxi)|\.so(\.[\d.]+)?|^\?|^\[\w+\])$")
"""C sources (a native frame with debug information), shared objects (without), `?` and `[vdso]` (neither)."""
PSEUDO = "stdlib (frozen)"
"""The package of code without a file: `<frozen os>`, and the `<string>` of a dataclass's generated `__init__`."""
MISREAD = "frames py-spy misread"
"""The package of a frame whose file is no path at all ("attempts", "choices:-1271302736", bytes): py-spy read the
frame while the interpreter changed it. Recorded with `--full-filenames`, every real frame has a path."""
NATIVE = "native code"
"""The package of a C frame: its time belongs to the Python frame that called it, or to the kernel (a system call)."""


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    """Its path inside its package; for a C frame, its source or shared object as py-spy gave it."""
    package: str
    """The top-level package or module; `NATIVE` for a C frame."""

    @property
    def name(self) -> str:
        return f"{self.function} ({self.file})"

    @property
    def native(self) -> bool:
        return self.package == NATIVE


@dataclass(frozen=True)
class Sample:
    """One stack py-spy saw, on one thread, and how many times."""

    thread: int | None
    """The OS thread id (the process id for the main thread); None when recorded without `--threads`."""
    thread_name: str
    frames: tuple[Frame, ...]
    """Outermost first."""
    count: int

    @property
    def python_frames(self) -> tuple[Frame, ...]:
        return tuple(frame for frame in self.frames if not frame.native)


def default_roots() -> tuple[str, ...]:
    """Where the profiled processes import from: this interpreter's `sys.path`, its scripts, the repository."""
    found = {entry for entry in sys.path if entry.startswith("/")}
    found |= {str(Path(sys.executable).parent), str(REPO)}
    return tuple(sorted(found, key=len, reverse=True))


ROOTS = default_roots()
"""Longest first, so a virtual environment inside the repository wins over the repository."""


def shorten(file: str, roots: Sequence[str] = ROOTS) -> str:
    """An absolute file as a path inside its package; names py-spy already shortened are left as they are."""
    if not file.startswith("/"):
        return file
    for root in roots:
        if file.startswith(root.rstrip("/") + "/"):
            return file[len(root.rstrip("/")) + 1 :]
    # Outside every root (another tree's sources under `bench.cpu_cost --trees`, a script): py-spy's own rule.
    path = Path(file)
    top = path.parent
    while (top / "__init__.py").exists() and top.parent != top:
        top = top.parent
    return str(path.relative_to(top))


def package_of(file: str) -> str:
    """The first component of a shortened file: its top-level package (or module)."""
    if file.startswith("<"):
        return PSEUDO
    if "/" not in file and not file.endswith(".py"):
        return MISREAD
    return file.split("/", 1)[0].removesuffix(".py")


def parse_frame(text: str, roots: Sequence[str] = ROOTS) -> Frame:
    match = _FRAME.match(text)
    if match is None:
        return Frame(text, "", "other")
    if _NATIVE_FILE.search(match["file"]):
        return Frame(match["func"], match["file"], NATIVE)
    file = shorten(match["file"], roots)
    return Frame(match["func"], file, package_of(file))


def samples(collapsed: str, roots: Sequence[str] = ROOTS) -> Iterator[Sample]:
    """Each stack with its thread and sample count; lines that are not samples are skipped."""
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        texts = [frame for frame in stack.split(";") if frame]
        thread = _THREAD.match(texts[0]) if texts else None
        if thread is not None:
            texts = texts[1:]
        frames = tuple(parse_frame(frame, roots) for frame in texts)
        if frames:
            tid, name = (int(thread["tid"]), thread["name"] or "") if thread else (None, "")
            yield Sample(tid, name, frames, int(count_text))
