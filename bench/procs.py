"""The processes the benchmark starts: each in its own process group, logged to a file, always stopped.

`Processes` is a context manager: whatever was started inside it is stopped when it exits, normally, on an error
or on Ctrl-C (SIGTERM to the benchmark is turned into the same KeyboardInterrupt). Only process groups started
here are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]


class StartError(RuntimeError):
    """A process did not come up; the message names it and ends with the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def fresh_store(database: Path) -> Path:
    """`database`, an SQLite file a process started here will use, without what an earlier run left there (the file,
    its `-wal` and `-shm`): with `--work` a directory outlives its run, and a store that held the last run's audit
    chain, cached answers or registered gateways would not start each run alike."""
    database.parent.mkdir(parents=True, exist_ok=True)
    for stale in database.parent.glob(database.name + "*"):
        if stale.name in (database.name, f"{database.name}-wal", f"{database.name}-shm", f"{database.name}-journal"):
            stale.unlink()
    return database


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class Proc:
    """One started process."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path, port: int | None) -> None:
        self.name = name
        self.popen = popen
        self.log = log
        self.port = port

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} has no port"
        return f"http://{LOOPBACK}:{self.port}"

    def wait_ready(self, timeout: float, health_path: str | None = None) -> None:
        """Wait until the port accepts connections (and `health_path` answers 2xx), or raise StartError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise StartError(f"{self.name} exited with code {self.popen.returncode}:\n{_tail(self.log)}")
            if self.port is not None and self._answers(health_path):
                return
            time.sleep(0.1)
        raise StartError(f"{self.name} was not ready after {timeout:g}s:\n{_tail(self.log)}")

    def _answers(self, health_path: str | None) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port or 0), timeout=0.5):
                pass
        except OSError:
            return False
        if health_path is None:
            return True
        try:
            with urllib.request.urlopen(self.url + health_path, timeout=2) as answer:
                return 200 <= int(answer.status) < 300
        except (urllib.error.URLError, OSError):
            return False

    def peak_rss_mib(self) -> float:
        """Peak resident memory (VmHWM) of the process and its descendants, summed, in MiB."""
        return self._memory_mib("VmHWM:")

    def rss_mib(self) -> float:
        """Resident memory now (VmRSS) of the process and its descendants, summed, in MiB."""
        return self._memory_mib("VmRSS:")

    def _memory_mib(self, field: str) -> float:
        total_kib = 0
        for pid in [self.pid, *descendants(self.pid)]:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field):
                        total_kib += int(line.split()[1])
        return total_kib / 1024

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL to whatever is left of it after `grace` seconds."""
        group = self.popen.pid  # start_new_session: the leader's pid is the group's id
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
                self.popen.wait(5)
        # Children (a server's workers) may outlive the leader by a moment, or ignore SIGTERM.
        deadline = time.monotonic() + grace
        while group_members(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_members(group):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def _stat_fields(entry: Path) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ..."""
    return (entry / "stat").read_text().rsplit(")", 1)[1].split()


def group_members(group: int) -> list[int]:
    """Live (not zombie) processes in a process group."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = _stat_fields(entry)
                if int(fields[2]) == group and fields[0] != "Z":
                    members.append(int(entry.name))
    return members


def descendants(pid: int) -> list[int]:
    """Every process whose chain of parents leads to `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(_stat_fields(entry)[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Processes:
    """Starts processes into a log directory and stops all of them, newest first, on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []
        self._previous_sigterm: object = None

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_environment(env),
                cwd=cwd,
                start_new_session=True,  # its own process group: stop() takes its children down too
            )
        proc = Proc(name, popen, log, port)
        self.started.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.started:
            self.started.remove(proc)

    def __enter__(self) -> Processes:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        while self.started:
            self.started.pop().stop()
        signal.signal(signal.SIGTERM, self._previous_sigterm)  # type: ignore[arg-type]


def child_environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The benchmark's environment plus `extra`, with the repository importable (`python -m bench.…` anywhere)."""
    environ = {**os.environ, **(extra or {})}
    path = environ.get("PYTHONPATH")
    environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{path}" if path else str(REPO)
    return environ


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def scoped(processes: Processes, proc: Proc) -> Iterator[Proc]:
    """Stop `proc` when the block ends."""
    try:
        yield proc
    finally:
        processes.stop(proc)
