"""Why a run ended early, in words a model can act on::

    RunFailure                 outcome
    ├── InvalidProgram         invalid    empty, too large, or not text
    ├── ProgramError           error      the program raised, or does not parse: the traceback is shown
    ├── NotConvertible         error      a value monty cannot carry across the sandbox boundary
    ├── LimitReached           limit
    │   ├── WallTimeLimit                 the whole run, tool calls and waiting for a worker included
    │   ├── ExecutionTimeLimit            time spent executing Python
    │   ├── MemoryLimit
    │   ├── ToolCallLimit                 the call past `max_tool_calls`
    │   ├── RoundTripLimit                monty's `max_suspensions`, a backstop behind ToolCallLimit
    │   └── ShareInUse                    the key already has its share of runs going; this one never started
    ├── WorkerCrashed          crashed    the worker process died; the pool replaces it
    └── SandboxUnavailable     unavailable  the pool cannot start, or the engine is stopping

Each carries the program's line when it is known. `outcome` labels the `isthmus_code_mode_runs` metric.
"""

from __future__ import annotations

from typing import ClassVar


class RunFailure(Exception):
    """A run that did not produce a result."""

    outcome: ClassVar[str] = "error"
    title: ClassVar[str] = "run_code failed"

    def __init__(self, message: str, *, line: int | None = None, traceback: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.traceback = traceback

    def describe(self) -> str:
        """`title: message (line N)`, then the traceback when there is one."""
        where = f" (line {self.line})" if self.line is not None and f"line {self.line}" not in self.message else ""
        text = f"{self.title}: {self.message}{where}"
        return f"{text}\n\n{self.traceback}" if self.traceback else text


class InvalidProgram(RunFailure):
    outcome = "invalid"
    title = "run_code refused the program"


class ProgramError(RunFailure):
    title = "The program raised an exception"


class NotConvertible(RunFailure):
    title = "A value could not cross the sandbox boundary"


class LimitReached(RunFailure):
    outcome = "limit"
    title = "The program hit a limit"


class WallTimeLimit(LimitReached):
    title = "Wall time limit reached"


class ExecutionTimeLimit(LimitReached):
    title = "Execution time limit reached"


class MemoryLimit(LimitReached):
    title = "Memory limit reached"


class ToolCallLimit(LimitReached):
    title = "Tool call limit reached"


class RoundTripLimit(LimitReached):
    title = "Host round-trip limit reached"


class ShareInUse(LimitReached):
    title = "Sandbox share in use"


class WorkerCrashed(RunFailure):
    outcome = "crashed"
    title = "The sandbox worker crashed"


class SandboxUnavailable(RunFailure):
    outcome = "unavailable"
    title = "Code Mode is unavailable"
