"""Whose code a process's CPU goes to, per request: Isthmus's own, each library it drives, or the event loop.

Every sample of a py-spy profile belongs to the innermost frame that has an owner: Isthmus's packages, a named
library, the event loop (asyncio's frames; uvloop is C, so its time shows as the self time of `Runner.run`), or the
floor's own code (`bench.passthrough`). Standard-library frames other than asyncio and sqlite3 (json, contextlib,
`<frozen os>`, a dataclass's generated `__init__`) have no owner of their own: their time goes to whoever called
them, so `json.dumps` from `llm_proxy` counts as Isthmus's and from the MCP SDK as the SDK's; so does a frame py-spy
misread (`bench.stacks.MISREAD`).

The shares are of CPU time, not of samples: py-spy samples each busy thread, and a thread waiting in a system call
it does not know as idle is sampled all the same, so each thread's samples are weighed by the CPU the thread used
while sampled (`/proc`, the main thread apart from the others). CPU per request is the process's CPU seconds in
the window divided by the requests it answered in it.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.stacks import MISREAD, PSEUDO, ROOTS, Frame, on_own_thread, samples

OWN = "Isthmus's own code"
LOOP = "event loop (uvloop, asyncio)"
FLOOR_CODE = "the floor's own code"
NO_CALLER = "standard library, no caller"
UNSAMPLED = "CPU py-spy found no samples for"
ISTHMUS_PACKAGES = frozenset({"isthmus", "llm_proxy", "mcp_hub", "toolpolicy"})
LOOP_PACKAGES = frozenset({"asyncio", "uvloop"})
SERVER = "HTTP server: uvicorn/httptools"
CLIENT = "HTTP client: aiohttp"
AIOHTTP = ("aiohttp", "multidict", "yarl", "propcache", "frozenlist", "aiosignal", "aiohappyeyeballs")
LIBRARIES = {
    **dict.fromkeys(("uvicorn", "httptools", "h11", "websockets"), SERVER),
    "starlette": "starlette",
    **dict.fromkeys(AIOHTTP, CLIENT),
    **dict.fromkeys(("mcp", "mcp_types"), "mcp SDK"),
    **dict.fromkeys(("pydantic", "pydantic_core", "annotated_types", "typing_inspection"), "pydantic"),
    **dict.fromkeys(("anyio", "sniffio"), "anyio"),
    "opentelemetry": "OpenTelemetry SDK",
    **dict.fromkeys(("redis", "hiredis"), "redis/hiredis"),
    **dict.fromkeys(("aiosqlite", "sqlite3"), "aiosqlite/sqlite"),
    "sqlalchemy": "SQLAlchemy",
    "prometheus_client": "prometheus_client",
}
"""Libraries on the request path, by top-level package; any other library is named by its own package."""
STACK = (SERVER, CLIENT, LOOP)
"""What the floor is made of: the server, the client and the loop Isthmus runs on too."""
KINDS = {OWN: "Isthmus", LOOP: "event loop", FLOOR_CODE: "the floor", NO_CALLER: "stdlib", UNSAMPLED: "unsampled"}
CALLER_PAYS = (frozenset(sys.stdlib_module_names) | {PSEUDO, MISREAD}) - LOOP_PACKAGES - {"sqlite3"}


def owner(frames: Sequence[Frame]) -> str:
    """Who a sample's time belongs to: its innermost frame with an owner (see the module's docstring)."""
    for frame in reversed(frames):
        package = frame.package
        if package in ISTHMUS_PACKAGES:
            return OWN
        if package in LOOP_PACKAGES:
            return LOOP
        if package in LIBRARIES:
            return LIBRARIES[package]
        if package == "bench":
            return FLOOR_CODE
        if package not in CALLER_PAYS:
            return package
    return NO_CALLER


def kind(name: str) -> str:
    return KINDS.get(name, "library")


@dataclass(frozen=True)
class ThreadCpu:
    """CPU seconds a process used while it was sampled: its main thread, and all its other threads together."""

    main: float
    others: float


@dataclass(frozen=True)
class Attribution:
    """One profile's CPU by owner."""

    shares: dict[str, float]
    """Owner -> share of the process's CPU (of its samples, when the CPU is not known), largest first."""
    samples: int
    cpu_ms: float | None = None
    """The process's CPU per request answered while sampled, in ms."""

    def share(self, owners: Iterable[str]) -> float:
        return sum(self.shares.get(name, 0.0) for name in owners)

    def ms(self, owners: Iterable[str]) -> float | None:
        """CPU per request of the owners together, in ms."""
        return None if self.cpu_ms is None else self.share(owners) * self.cpu_ms

    @property
    def own(self) -> float:
        return self.shares.get(OWN, 0.0)


def attribute(
    collapsed: str, cpu: ThreadCpu | None = None, requests: int = 0, roots: Sequence[str] = ROOTS
) -> Attribution:
    """The owners' shares of a raw py-spy profile; with the CPU and the requests of its window, CPU per request."""
    by_thread: dict[bool, Counter[str]] = {False: Counter(), True: Counter()}
    for frames, count in samples(collapsed, roots):
        by_thread[on_own_thread(frames)][owner(frames)] += count
    total_samples = sum(sum(counter.values()) for counter in by_thread.values())
    weights: dict[str, float] = {}
    if cpu is None or cpu.main + cpu.others <= 0:
        for counter in by_thread.values():
            for name, count in counter.items():
                weights[name] = weights.get(name, 0.0) + count
    else:
        for own_thread, seconds in ((False, cpu.main), (True, cpu.others)):
            counter = by_thread[own_thread]
            counted = sum(counter.values())
            if counted == 0:
                weights[UNSAMPLED] = weights.get(UNSAMPLED, 0.0) + seconds
                continue
            for name, count in counter.items():
                weights[name] = weights.get(name, 0.0) + seconds * count / counted
    whole = sum(weights.values())
    if whole <= 0:
        return Attribution({}, total_samples)
    ranked = sorted(weights.items(), key=lambda item: (-item[1], item[0]))
    shares = {name: weight / whole for name, weight in ranked if weight > 0}
    cpu_ms = None if cpu is None or requests <= 0 else (cpu.main + cpu.others) * 1000 / requests
    return Attribution(shares, total_samples, cpu_ms)
