"""Drives one program through its snapshots: the sandbox asks, the driver answers.

Monty could call host functions itself (`resume_auto`), but then nobody could stop a run at the call past its
limit, or cancel the calls still in flight when it ends. So every request of the sandbox comes here:

- a call of a bound tool: counted (the call past the limit ends the run, naming its line), then started as a task
  of this run and answered with a future; the future settles when the task ends (`asyncio.gather` in the program
  gives concurrent tasks);
- a call of any other name (`__import__('os')`, a tool that was not bound): `NameError`;
- an import: only the session's own modules resolve; any other OS call (files, environment): monty's refusal;
- a lookup of an undefined name: `NameError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pydantic_monty import (
    AsyncFunctionSnapshot,
    AsyncFutureSnapshot,
    AsyncNameLookupSnapshot,
    AsyncSnapshot,
    ExternalSettledResult,
    MontyComplete,
    SourceRange,
)

from mcp_hub.codemode import failures

Dispatch = Callable[[str, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]
"""`(module.function, args, kwargs) -> value`; raises the exception the program should see."""


class Driver:
    """One run: answers the sandbox's requests, makes its tool calls, settles its futures."""

    def __init__(self, code: str, dispatch: Dispatch, functions: frozenset[str], max_calls: int) -> None:
        self.code = code.encode()
        self.dispatch = dispatch
        self.functions = functions
        self.max_calls = max_calls
        self.filename = "<python-input-0>"
        self.calls = 0
        self.last_call: tuple[str, int | None] | None = None
        self.phase = "waiting for a free sandbox worker"
        self._spawned: dict[int, str] = {}
        self._settled: dict[int, ExternalSettledResult] = {}
        self._arrived = anyio.Event()

    def line_of(self, position: SourceRange) -> int | None:
        if position.filename != self.filename:
            return None
        return self.code[: position.start].count(b"\n") + 1

    async def drive(self, snapshot: AsyncSnapshot) -> Any:
        error: Exception | None = None
        async with anyio.create_task_group() as tasks:
            try:
                while not isinstance(snapshot, MontyComplete):
                    if isinstance(snapshot, AsyncFunctionSnapshot):
                        snapshot = await self._call(snapshot, tasks)
                    elif isinstance(snapshot, AsyncNameLookupSnapshot):
                        snapshot = await snapshot.resume()  # no value: NameError / AttributeError in the sandbox
                    else:
                        snapshot = await self._futures(snapshot)
                value = snapshot.output
            except Exception as exc:
                error = exc
            finally:
                # Calls the program started but never awaited end with the run.
                tasks.cancel_scope.cancel()
        if error is not None:
            raise error
        return value

    async def _call(self, snapshot: AsyncFunctionSnapshot, tasks: TaskGroup) -> AsyncSnapshot:
        if snapshot.is_os_function:
            if snapshot.function_name == "import":
                return await snapshot.resume_auto()  # only the session's external modules resolve
            return await snapshot.resume_not_handled()
        name = str(snapshot.function_name)
        if name not in self.functions:
            # Calling a name nobody defined reaches the host too (e.g. `__import__('os')`): it does not exist.
            return await snapshot.resume({"exception": NameError(f"name {name!r} is not defined")})
        line = self.line_of(snapshot.position)
        if self.calls >= self.max_calls:
            raise failures.ToolCallLimit(
                f"the program tried to make more than {self.max_calls} tool calls in one run; call "
                f"{self.calls + 1} was {name}(). Batch the work (fewer, larger calls) or split it over several runs",
                line=line,
            )
        self.calls += 1
        self.last_call = (name, line)
        # Always a future, even where monty would allow an eager answer: a plain return value would make the call
        # synchronous in the sandbox, and `await` on its result would fail.
        self._spawned[snapshot.call_id] = name
        tasks.start_soon(self._background, snapshot.call_id, name, tuple(snapshot.args), dict(snapshot.kwargs))
        return await snapshot.resume({"future": ...})

    async def _background(self, call_id: int, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        result: ExternalSettledResult
        try:
            result = {"return_value": await self.dispatch(name, args, kwargs)}
        except Exception as exc:
            result = {"exception": exc}
        self._settled[call_id] = result
        self._arrived.set()

    async def _futures(self, snapshot: AsyncFutureSnapshot) -> AsyncSnapshot:
        pending = snapshot.pending_call_ids
        strays = [call_id for call_id in pending if call_id not in self._spawned]
        if strays:
            error = RuntimeError("the sandbox awaited a call the host never started")
            return await snapshot.resume({call_id: {"exception": error} for call_id in strays})
        while not any(call_id in self._settled for call_id in pending):
            names = [f"{self._spawned[call_id]}()" for call_id in pending]
            self.phase = f"waiting for {names[0]}" if len(names) == 1 else f"waiting for {len(names)} tool calls"
            self._arrived = anyio.Event()
            await self._arrived.wait()
        self.phase = "executing"
        ready = {call_id: self._settled.pop(call_id) for call_id in pending if call_id in self._settled}
        for call_id in ready:
            del self._spawned[call_id]
        return await snapshot.resume(ready)

    def last_call_note(self) -> str:
        """Where the program last called a tool, for errors that know no line of their own."""
        if self.last_call is None:
            return ""
        name, line = self.last_call
        return f" (the last tool call was {name}()" + (f" at line {line})" if line else ")")
