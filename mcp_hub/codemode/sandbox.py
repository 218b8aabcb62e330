"""Runs programs in a pool of pydantic-monty worker processes, with the run's limits.

Each run checks a fresh session out of one `AsyncMonty` pool, binds the request's modules, and hands the program to
a `Driver` (which answers the sandbox's requests and makes the tool calls). Execution time and memory are enforced
by monty inside the worker; wall time by a cancel scope around the whole run (waiting for a worker and for tool
calls included); the pool's `request_timeout` kills a worker that stops answering. A session that hit a limit is
never reused: every run gets a fresh one. Whatever the program does, `run` returns a `RunOutcome`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic_monty import (
    AsyncMonty,
    AsyncMontySession,
    ExternalModule,
    MontyConversionError,
    MontyCrashedError,
    MontyError,
    MontyRuntimeError,
    MontySyntaxError,
    ResourceLimits,
)

from mcp_hub.codemode import failures
from mcp_hub.codemode.driver import Dispatch, Driver
from toolpolicy.settings import CodeModeSettings

logger = logging.getLogger(__name__)

HostFunction = Callable[..., Awaitable[Any]]

REQUEST_GRACE = 5.0
"""Seconds past the execution limit after which the pool kills a worker that has stopped answering."""
EXIT_PAUSE = 0.05
"""pydantic-monty 1.4.0 can abort the process at exit when the loop closes right after the pool: let it settle."""
MAX_TRACEBACK = 4000
_INPUT_NAME = re.compile(r"<python-input-\d+>")


class Printed:
    """What the program printed, kept up to `limit` bytes; the rest is only counted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0

    def __call__(self, stream: str, text: str) -> None:
        size = len(text.encode())
        self.total += size
        if self.kept < self.limit:
            self.parts.append(text)
            self.kept += size

    @property
    def text(self) -> str:
        return "".join(self.parts)


@dataclass
class RunOutcome:
    value: Any = None
    printed: str = ""
    printed_bytes: int = 0
    tool_calls: int = 0
    failure: failures.RunFailure | None = None


class Sandbox:
    """A pool of monty workers; `run` executes one program with the given modules bound."""

    def __init__(self, settings: CodeModeSettings) -> None:
        self.settings = settings
        self._pool: AsyncMonty | None = None
        self._lock = anyio.Lock()
        self._stopped = False

    async def start(self) -> None:
        async with self._lock:
            self._stopped = False
            if self._pool is not None:
                return
            pool = AsyncMonty(
                min_processes=min(self.settings.warm_workers, self.settings.workers),
                max_processes=self.settings.workers,
                request_timeout=self.settings.execution_timeout + REQUEST_GRACE,
            )
            await pool.__aenter__()
            self._pool = pool

    async def stop(self) -> None:
        async with self._lock:
            self._stopped = True
            pool, self._pool = self._pool, None
            if pool is not None:
                await pool.__aexit__(None, None, None)
                await anyio.sleep(EXIT_PAUSE)

    @property
    def max_round_trips(self) -> int:
        # Monty counts imports, name lookups and future resolutions too; the Driver counts tool calls exactly.
        return max(1000, 20 * self.settings.max_tool_calls)

    def _limits(self) -> ResourceLimits:
        return {
            "max_feed_duration_secs": self.settings.execution_timeout,
            "max_memory": self.settings.max_memory_bytes,
            "max_suspensions": self.max_round_trips,
        }

    async def run(self, code: str, modules: Mapping[str, Mapping[str, HostFunction]], dispatch: Dispatch) -> RunOutcome:
        """Run `code` with each module of `modules` importable; never raises for anything the program does."""
        if self._stopped:
            return RunOutcome(failure=failures.SandboxUnavailable("the gateway is shutting down; try again shortly"))
        try:
            await self.start()
        except Exception as exc:
            logger.exception("the Code Mode sandbox pool could not start")
            return RunOutcome(failure=failures.SandboxUnavailable(f"the sandbox could not start: {exc}"))
        pool = self._pool
        assert pool is not None
        printed = Printed(self.settings.max_output_bytes)
        functions = frozenset(f"{module}.{name}" for module, members in modules.items() for name in members)
        run = Driver(code, dispatch, functions, self.settings.max_tool_calls)
        outcome = RunOutcome()
        with anyio.move_on_after(self.settings.wall_timeout) as scope:
            try:
                outcome.value = await self._execute(pool, run, modules, printed)
            except failures.RunFailure as failure:
                outcome.failure = failure
            except Exception:
                logger.exception("Code Mode run failed in the gateway")
                outcome.failure = failures.RunFailure("the gateway failed to run the program (logged); try again")
        if scope.cancelled_caught:
            outcome.failure = failures.WallTimeLimit(
                f"the run took longer than {self.settings.wall_timeout:g} s in all; it was {run.phase}"
                + run.last_call_note()
            )
        outcome.printed, outcome.printed_bytes, outcome.tool_calls = printed.text, printed.total, run.calls
        return outcome

    async def _execute(
        self, pool: AsyncMonty, run: Driver, modules: Mapping[str, Mapping[str, HostFunction]], printed: Printed
    ) -> Any:
        external = {name: ExternalModule(dict(functions)) for name, functions in modules.items()}
        try:
            async with pool.checkout(limits=self._limits(), external_modules=external) as session:
                run.phase = "executing"
                if external:
                    # Bind every module up front so `docs.search(...)` works without an import; a separate feed
                    # keeps the program's line numbers its own.
                    await session.feed_run("".join(f"import {name}\n" for name in external))
                    run.filename = "<python-input-1>"
                value = await run.drive(await session.feed_start(run.code.decode(), print_callback=printed))
                return value if value is not None else await _result_variable(session, printed)
        except MontyError as exc:
            raise self._failure(exc, run) from None

    def _failure(self, exc: MontyError, run: Driver) -> failures.RunFailure:
        if isinstance(exc, MontyCrashedError):
            if exc.timed_out:
                return failures.WorkerCrashed(
                    f"the worker stopped answering for {self.settings.execution_timeout + REQUEST_GRACE:g} s and "
                    "was stopped" + run.last_call_note()
                )
            logger.warning("Code Mode sandbox worker crashed: %s", exc)
            return failures.WorkerCrashed(
                f"{exc}; a new worker replaces it, the run can be retried" + run.last_call_note()
            )
        if isinstance(exc, MontyConversionError):
            return failures.NotConvertible(f"{exc}; use plain data (dict, list, str, int, float, bool or None)")
        if isinstance(exc, MontySyntaxError):
            return failures.ProgramError(
                f"SyntaxError: {exc}", line=_line(exc, run), traceback=_traceback(exc.display())
            )
        if isinstance(exc, MontyRuntimeError):
            return self._runtime_failure(exc, run)
        return failures.RunFailure(str(exc))

    def _runtime_failure(self, exc: MontyRuntimeError, run: Driver) -> failures.RunFailure:
        inner, line = exc.exception(), _line(exc, run)
        message = str(inner)
        if isinstance(inner, TimeoutError) and "time limit exceeded" in message:
            return failures.ExecutionTimeLimit(
                f"the program executed for more than {self.settings.execution_timeout:g} s (waiting on tool calls "
                "does not count); look for a loop that never ends or work that could be done by a tool"
                + ("" if line else run.last_call_note()),
                line=line,
            )
        if isinstance(inner, MemoryError) and "memory limit exceeded" in message:
            return failures.MemoryLimit(
                f"the program used more than {self.settings.max_memory_bytes / 2**20:g} MiB of memory; keep only "
                "what the result needs" + ("" if line else run.last_call_note()),
                line=line,
            )
        if isinstance(inner, RuntimeError) and "suspension limit" in message:
            return failures.RoundTripLimit(
                f"the program asked the host for something (tool calls, imports, names it never defined) more than "
                f"{self.max_round_trips} times in one run",
                line=line,
            )
        return failures.ProgramError(exc.display("type-msg"), line=line, traceback=_traceback(exc.display()))


async def _result_variable(session: AsyncMontySession, printed: Printed) -> Any:
    """The program's `result` variable, for programs that end with a statement; None when there is none."""
    try:
        return await session.feed_run("result", print_callback=printed)
    except MontyRuntimeError as exc:
        if isinstance(exc.exception(), NameError):
            return None
        raise


def _line(exc: MontyRuntimeError | MontySyntaxError, run: Driver) -> int | None:
    lines = [frame.line for frame in exc.traceback() if frame.filename == run.filename]
    return lines[-1] if lines else None


def _traceback(text: str) -> str:
    text = _INPUT_NAME.sub("<code>", text)
    return text if len(text) <= MAX_TRACEBACK else "…" + text[-MAX_TRACEBACK:]
