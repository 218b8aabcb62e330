"""Code Mode: a key's tools behind three meta-tools, used from Python run in a sandbox.

The hub lists `meta_tools()` instead of the tools of servers in Code Mode, and hands every call of a meta-tool to
`call`, with the tools the key may use there and a `ToolCaller` that makes one governed call. Everything a meta-tool
says or binds comes from those specs alone, so a tool the key may not use is neither found, documented nor bound.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import mcp_types as types

from mcp_hub.codemode import meta
from mcp_hub.codemode.failures import InvalidProgram, ShareInUse
from mcp_hub.codemode.schema import TypeRenderer
from mcp_hub.codemode.spec import ToolCaller, ToolSpec
from mcp_hub.codemode.stubs import docs, one_line
from mcp_hub.codemode.toolbox import Toolbox
from toolpolicy.errors import LimitExceeded
from toolpolicy.settings import CodeModeSettings
from toolpolicy.telemetry.metrics import Metrics

if TYPE_CHECKING:
    # With pydantic-monty behind them (about 5 MiB resident): imported when a sandbox is made (`_load_sandbox`).
    from mcp_hub.codemode.sandbox import RunOutcome, Sandbox

logger = logging.getLogger(__name__)

RUN_ID_META = "isthmus/run_id"
TOOL_CALLS_META = "isthmus/tool_calls"
OUTCOME_META = "isthmus/outcome"
"""`ok`, `error`, `limit`, `crashed` or `unavailable`: the run's metric label, for the hub's audit record."""

Admit = Callable[[], AbstractContextManager[object]]
"""Holds a run's share of the sandbox for the caller's key while the run goes; raises LimitExceeded to refuse it."""


def _text(text: str, *, error: bool = False, meta_: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error, meta=meta_)


class CodeMode:
    """The Code Mode engine; `start()` warms the sandbox pool, `stop()` closes it.

    `lazy` (a gateway none of whose servers or configured keys uses Code Mode) leaves the sandbox, and pydantic-monty
    behind it, unloaded until the first run: a key given Code Mode later still runs programs.
    """

    def __init__(self, settings: CodeModeSettings, *, metrics: Metrics | None = None, lazy: bool = False) -> None:
        self.settings = settings
        self.metrics = metrics
        self._sandbox: Sandbox | None = None if lazy else _load_sandbox(settings)
        self._stopped = False

    async def start(self) -> None:
        self._stopped = False
        if self._sandbox is not None:
            await self._sandbox.start()

    async def stop(self) -> None:
        self._stopped = True
        if self._sandbox is not None:
            await self._sandbox.stop()

    async def sandbox(self) -> Sandbox:
        """The sandbox, loaded now if it was not (stopped as the engine is, so a run after `stop()` is refused)."""
        if self._sandbox is None:
            self._sandbox = _load_sandbox(self.settings)
            if self._stopped:
                await self._sandbox.stop()
        return self._sandbox

    def meta_tools(self, tools: Sequence[ToolSpec] | Toolbox = ()) -> list[types.Tool]:
        """The meta-tools' definitions; given the key's tools, the descriptions name their modules."""
        return meta.definitions(self.settings, sorted(_toolbox(tools).modules))

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        tools: Sequence[ToolSpec] | Toolbox,
        caller: ToolCaller,
        run_id: str,
        *,
        admit: Admit | None = None,
    ) -> types.CallToolResult:
        """Answer one meta-tool call; bad arguments and failed programs are `is_error` results, never exceptions.

        `tools` are the specs of the tools the key may use here, or a `Toolbox` of them that the caller keeps
        between calls (building one for 500 tools takes some milliseconds, its search index as much again).
        `admit` is entered around each run (a refusal is an `is_error` result too).
        """
        if name not in meta.META_TOOL_NAMES:
            raise ValueError(f"{name!r} is not a Code Mode meta-tool (those are {sorted(meta.META_TOOL_NAMES)})")
        arguments = arguments or {}
        toolbox = _toolbox(tools)
        try:
            if name == meta.SEARCH_TOOLS:
                return self._search(toolbox, *meta.search_arguments(arguments))
            if name == meta.GET_TOOL_DOCS:
                return self._docs(toolbox, meta.docs_arguments(arguments))
            code = meta.code_argument(arguments, self.settings.max_code_bytes)
        except meta.MetaArgumentError as exc:
            if name == meta.RUN_CODE:
                self._count(InvalidProgram.outcome)
            return _text(str(exc), error=True)
        return await self._run(toolbox, code, caller, run_id, admit)

    def _search(self, toolbox: Toolbox, query: str, limit: int) -> types.CallToolResult:
        if not toolbox.tools:
            return _text("No tools are available through Code Mode to this key.")
        hits = toolbox.index.search(query, limit)
        if not hits:
            return _text(f"No tool matches {query!r}. {_modules_line(toolbox)} Try other words, or a module name.")
        renderer = TypeRenderer(compact=True)
        header = (
            f"{len(hits)} of {len(toolbox)} tools for {query!r}, best first; "
            "get_tool_docs(names=[...]) gives their full stubs."
        )
        return _text("\n".join([header, *(one_line(tool, renderer) for tool, _ in hits)]))

    def _docs(self, toolbox: Toolbox, names: list[str]) -> types.CallToolResult:
        found = []
        unknown = []
        for name in names:
            tool = toolbox.find(name)
            if tool is None:
                unknown.append(name)
            elif tool not in found:
                found.append(tool)
        note = ""
        if unknown:
            qualified = [tool.qualified for tool in toolbox.tools]
            guesses = {close for name in unknown for close in difflib.get_close_matches(name, qualified, n=3)}
            note = f"Unknown tool(s): {', '.join(map(repr, unknown))}."
            if guesses:
                note += f" Did you mean: {', '.join(sorted(guesses))}?"
            note += " Names are `module.function`, as search_tools prints them."
        if not found:
            return _text(note, error=True)
        text = docs(found, toolbox.modules)
        return _text(f"{text}\n\n# {note}" if note else text)

    async def _run(
        self, toolbox: Toolbox, code: str, caller: ToolCaller, run_id: str, admit: Admit | None
    ) -> types.CallToolResult:
        from mcp_hub.codemode.bindings import Bindings
        from mcp_hub.codemode.sandbox import RunOutcome

        bindings = Bindings(toolbox, caller)
        started = time.perf_counter()
        try:
            share = admit() if admit is not None else contextlib.nullcontext()
        except LimitExceeded as exc:
            outcome = RunOutcome(failure=ShareInUse(exc.message))
        else:
            with share:
                sandbox = await self.sandbox()
                outcome = await sandbox.run(code, bindings.modules(), bindings.dispatch)
        label = outcome.failure.outcome if outcome.failure else "ok"
        result = self._render(outcome, {RUN_ID_META: run_id, TOOL_CALLS_META: outcome.tool_calls, OUTCOME_META: label})
        self._count(label)
        logger.info(
            "code mode run %s: %s, %d tool call(s), %.3f s",
            run_id,
            label,
            outcome.tool_calls,
            time.perf_counter() - started,
        )
        return result

    def _render(self, outcome: RunOutcome, meta_: dict[str, Any]) -> types.CallToolResult:
        from mcp_hub.codemode.values import cut, dump_json

        limit = self.settings.max_output_bytes
        sections = []
        if outcome.failure is not None:
            sections.append(outcome.failure.describe())
        else:
            value, size = cut(dump_json(outcome.value), limit)
            sections.append(f"Result:\n{value}")
            if size > limit:
                sections.append(f"[result cut at {limit} of {size} bytes: return less, or aggregate in the program]")
            elif outcome.value is None and not outcome.printed:
                sections.append("(The program ended without a value: end with an expression, or set `result`.)")
        if outcome.printed:
            printed, _ = cut(outcome.printed, limit)
            title = "Printed before the failure:" if outcome.failure else "Printed:"
            sections.append(f"{title}\n{printed.rstrip()}")
            if outcome.printed_bytes > limit:
                sections.append(f"[printed output cut at {limit} of {outcome.printed_bytes} bytes]")
        return _text("\n\n".join(sections), error=outcome.failure is not None, meta_=meta_)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.code_mode_runs.labels(outcome).inc()


def _load_sandbox(settings: CodeModeSettings) -> Sandbox:
    from mcp_hub.codemode.sandbox import Sandbox

    return Sandbox(settings)


def _modules_line(toolbox: Toolbox) -> str:
    counts = {module: len(toolbox.in_module(module)) for module in sorted(toolbox.modules)}
    return "Modules: " + ", ".join(f"{module} ({count} tools)" for module, count in counts.items()) + "."


def _toolbox(tools: Sequence[ToolSpec] | Toolbox) -> Toolbox:
    return tools if isinstance(tools, Toolbox) else Toolbox(tools)
