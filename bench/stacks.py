"""py-spy's raw output read: each line a stack of frames (outermost first) and how many samples it had.

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

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
PSEUDO = "stdlib (frozen)"
"""The package of code without a file: `<frozen os>`, and the `<string>` of a dataclass's generated `__init__`."""
MISREAD = "frames py-spy misread"
"""The package of a frame whose file is no path at all ("attempts", "choices:-1271302736", bytes): py-spy read the
frame while the interpreter changed it. Recorded with `--full-filenames`, every real frame has a path."""


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    """Its path inside its package."""
    package: str
    """The top-level package or module."""

    @property
    def name(self) -> str:
        return f"{self.function} ({self.file})"


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
    file = shorten(match["file"], roots)
    return Frame(match["func"], file, package_of(file))


def samples(collapsed: str, roots: Sequence[str] = ROOTS) -> Iterator[tuple[list[Frame], int]]:
    """Each stack (outermost frame first) with its sample count; lines that are not samples are skipped."""
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [parse_frame(frame, roots) for frame in stack.split(";") if frame]
        if frames:
            yield frames, int(count_text)


def on_own_thread(frames: Sequence[Frame]) -> bool:
    """Whether the stack is a thread other than the main one (a thread's stack starts in `threading`)."""
    return frames[0].file == "threading.py" and frames[0].function.endswith("_bootstrap")
