"""Whose code a process's CPU goes to, per request: Isthmus's own, each library it drives, the event loop, or the
kernel's socket I/O and polling.

Every sample of a py-spy profile belongs to the innermost frame that has an owner: Isthmus's packages, a named
library, the event loop (asyncio's frames; uvloop is C, so the loop's own time shows under `Runner.run`), or the
floor's own code (`bench.passthrough`). Standard-library frames other than asyncio and sqlite3 (json, contextlib,
`<frozen os>`, a dataclass's generated `__init__`) have no owner of their own: their time goes to whoever called
them, so `json.dumps` from `llm_proxy` counts as Isthmus's and from the MCP SDK as the SDK's; so does a frame py-spy
misread (`bench.stacks.MISREAD`), and so does C code (`bench.stacks.NATIVE`: uvloop's, CPython's, the C library's),
with one exception: a sample whose innermost frames are the C library's wrapper of a system call is in the kernel,
whoever made the call, and belongs to `KERNEL` for socket I/O and polling (`write`, `writev`, `read`, `recv`,
`epoll_pwait`, ...), to `KERNEL_OTHER` for any other (SQLite's `pwrite64` and `fdatasync`, the GIL's and the queues'
waits on a futex, a probe's `clock_nanosleep`). The system time py-spy's own stops cost each thread falls in these
two as well.

The shares are of CPU time, not of samples. py-spy samples every thread that is running or waiting for a core (state
R), so a thread's samples say where it was, not how much CPU it used: an idle probe thread woken often (the loop-lag
probe sleeps in `time.sleep`) is sampled far beyond its CPU, and on a loaded machine a thread woken from `epoll_pwait`,
or one that handed the core to the peer its socket write woke, waits for a core inside that system call. So each
thread's own CPU (`/proc/PID/task/TID/stat`) is shared among its own samples: its system time among its samples in a
system call (so the two kernel rows together are the threads' system time), its user time among the others (all its
CPU among all its samples when it has none of one kind). CPU of a
thread py-spy never sampled is shown apart (`UNSAMPLED`); when threads ended in the window, their CPU (the process's
figure beyond its live threads') is shared among the samples of threads /proc no longer lists. CPU per request is the
process's CPU seconds over the requests it answered, in a window of the same load without py-spy
(`bench.profile.profile_under_load`).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.stacks import MISREAD, NATIVE, PSEUDO, ROOTS, Frame, Sample, samples

OWN = "Isthmus's own code"
LOOP = "event loop (uvloop, asyncio)"
KERNEL = "kernel: socket I/O and polling"
KERNEL_OTHER = "kernel: other system calls"
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
STACK = (SERVER, CLIENT, LOOP, KERNEL)
"""What the floor is made of: the server, the client, the loop Isthmus runs on too, and the kernel's socket I/O."""
KINDS = {
    OWN: "Isthmus",
    LOOP: "event loop",
    KERNEL: "kernel",
    KERNEL_OTHER: "kernel",
    FLOOR_CODE: "the floor",
    NO_CALLER: "stdlib",
    UNSAMPLED: "unsampled",
}
CALLER_PAYS = (frozenset(sys.stdlib_module_names) | {PSEUDO, MISREAD, NATIVE}) - LOOP_PACKAGES - {"sqlite3"}


LIBC = ("libc.so", "libc-", "libpthread")
"""The C library's shared object (glibc before 2.34 kept `send` and `recv` in libpthread)."""
SOCKET_CALLS = frozenset(
    {
        *("write", "writev", "send", "sendto", "sendmsg", "sendmmsg"),
        *("read", "readv", "recv", "recvfrom", "recvmsg", "recvmmsg"),
        *("epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect", "pselect6"),
    }
)
"""The C library's socket I/O and polling system calls, as its wrappers are named."""
OTHER_CALLS = frozenset(
    {
        *("pwrite", "pwrite64", "pread", "pread64", "fsync", "fdatasync", "lseek", "lseek64", "openat", "close"),
        *("pthread_cond_wait", "pthread_cond_timedwait", "sem_wait", "sem_timedwait", "clock_nanosleep", "nanosleep"),
        *("getpid", "gettid", "fstat", "fstatat64", "access", "mmap", "munmap", "madvise", "mprotect", "brk", "ioctl"),
        *("fcntl", "fcntl64", "accept", "accept4", "connect", "shutdown", "epoll_ctl", "getsockopt", "setsockopt"),
        *("getsockname", "getpeername", "socket", "syscall"),
    }
)
"""The C library's other system calls seen in these profiles (file I/O, the GIL's waits, sleeps, ...)."""


def _wrapper_name(function: str) -> str:
    """glibc's internal names of a wrapper as its public one: `__libc_write`, `__GI___send`, `__write_nocancel`."""
    name = function.lstrip("_").removeprefix("GI_").lstrip("_").removeprefix("libc_")
    return name.removesuffix("_nocancel")


def _libc_calls(frames: Sequence[Frame]) -> Iterable[str]:
    """The wrappers' names among the innermost frames that are the C library's (innermost first)."""
    for frame in reversed(frames):
        if not (frame.native and frame.file.rsplit("/", 1)[-1].startswith(LIBC)):
            return
        yield _wrapper_name(frame.function)


def system_call(sample: Sample) -> str | None:
    """The system call the sample is in, if it is in one."""
    return next((name for name in _libc_calls(sample.frames) if name in SOCKET_CALLS or name in OTHER_CALLS), None)


def owner(sample: Sample) -> str:
    """Who a sample's time belongs to: the kernel, or its innermost frame with an owner (see the module's
    docstring)."""
    call = system_call(sample)
    if call is not None:
        return KERNEL if call in SOCKET_CALLS else KERNEL_OTHER
    for frame in reversed(sample.frames):
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
class CpuTime:
    """CPU seconds in user and in system (kernel) mode."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system


@dataclass(frozen=True)
class ProcessCpu:
    """The CPU a process used while it was sampled: each thread's, and the whole process's."""

    threads: dict[int, CpuTime]
    """OS thread id -> its CPU in the window, for the threads alive at its end."""
    process: CpuTime
    """The process's, threads that ended in the window included."""
    ended: bool = False
    """Whether a thread alive at the window's start was gone at its end."""

    def beyond_threads(self) -> CpuTime:
        """The process's CPU beyond its live threads': that of threads that ended in the window, when some did,
        and otherwise only the process's figure rounded to clock ticks."""
        user = self.process.user - sum(cpu.user for cpu in self.threads.values())
        system = self.process.system - sum(cpu.system for cpu in self.threads.values())
        return CpuTime(max(0.0, user), max(0.0, system))


@dataclass(frozen=True)
class Weighed:
    """A profile's samples, each with the CPU seconds it stands for (its count, when the CPU is not known)."""

    samples: list[tuple[Sample, float]]
    unsampled: float
    """CPU seconds of threads py-spy found no samples for."""
    count: int
    """py-spy's samples, all threads together."""


def _share(cpu: CpuTime, stacks: list[Sample]) -> tuple[list[tuple[Sample, float]], float]:
    """One thread's CPU shared among its samples: system time among those in a system call, user time among the
    others (all of it among all of them when either kind has none); with no samples at all, unsampled."""
    if not stacks:
        return [], cpu.total
    kernel, user = [], []
    for sample in stacks:
        (kernel if system_call(sample) is not None else user).append(sample)
    pools = [(kernel, cpu.system), (user, cpu.user)] if kernel and user else [(stacks, cpu.total)]
    weighed = []
    for pool, seconds in pools:
        counted = sum(sample.count for sample in pool)
        weighed += [(sample, seconds * sample.count / counted) for sample in pool]
    return weighed, 0.0


def weigh(collapsed: str, cpu: ProcessCpu | None = None, roots: Sequence[str] = ROOTS) -> Weighed:
    """Each sample with its share of its own thread's CPU (see the module's docstring)."""
    found = list(samples(collapsed, roots))
    count = sum(sample.count for sample in found)
    if cpu is None or cpu.process.total <= 0:
        return Weighed([(sample, float(sample.count)) for sample in found], 0.0, count)
    by_thread: dict[int | None, list[Sample]] = {}
    for sample in found:
        thread = sample.thread if sample.thread in cpu.threads else None
        by_thread.setdefault(thread, []).append(sample)
    weighed: list[tuple[Sample, float]] = []
    unsampled = 0.0
    ended = cpu.beyond_threads() if cpu.ended or None in by_thread else CpuTime(0.0, 0.0)
    for thread, used in [*cpu.threads.items(), (None, ended)]:
        shared, missed = _share(used, by_thread.get(thread, []))
        weighed += shared
        unsampled += missed
    return Weighed(weighed, unsampled, count)


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
    collapsed: str, cpu: ProcessCpu | None = None, cpu_ms: float | None = None, roots: Sequence[str] = ROOTS
) -> Attribution:
    """The owners' shares of a raw py-spy profile, weighed by the CPU of its window when known; `cpu_ms` is the
    process's CPU per request, which the shares divide."""
    weighed = weigh(collapsed, cpu, roots)
    weights: Counter[str] = Counter()
    for sample, weight in weighed.samples:
        weights[owner(sample)] += weight
    if weighed.unsampled > 0:
        weights[UNSAMPLED] += weighed.unsampled
    whole = sum(weights.values())
    if whole <= 0:
        return Attribution({}, weighed.count)
    ranked = sorted(weights.items(), key=lambda item: (-item[1], item[0]))
    shares = {name: weight / whole for name, weight in ranked if weight > 0}
    return Attribution(shares, weighed.count, cpu_ms)
