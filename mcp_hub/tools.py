"""The tools a caller lists and calls, on every edge: its direct tools, and Code Mode's meta-tools in front of the
servers it uses through Code Mode.

- Listing: the three meta-tools first (only when the caller has at least one tool in Code Mode; their descriptions
  name its modules), then the direct tools.
- Calls: a meta-tool name goes to the Code Mode engine when the caller sees a server in Code Mode, anything else to
  the governed pipeline. On `/mcp` the names cannot collide (direct names are `<server>__<tool>`); on
  `/mcp/<server>` the server is either in Code Mode for the caller, and its own tools are reachable only from
  programs (a tool of its own named `run_code` is `server.run_code` there), or it is not, and the names are its own.
- Every tool call a program makes is a `ToolCalls.call(..., via="code_mode", run_id=...)`: the very path of a direct
  call (allowlist, rate limits, budgets, audit).
- A key runs at most its share of Code Mode's sandbox at once (`mcp.per_key.code_mode_runs`): one more `run_code`
  is a tool error naming the share, like a rate limit on a direct call.
- Each meta-tool call leaves one audit record of its own: kind `tool_call`, target `code_mode/<meta-tool>`, details
  `tool`, `outcome` and, for `run_code`, `run_id` and `tool_calls`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog
from mcp_hub.codemode import META_TOOL_NAMES, OUTCOME_META, RUN_CODE, TOOL_CALLS_META, CodeMode, ToolCaller
from mcp_hub.fairness import KeySlots, Slot
from mcp_hub.listing import CODE_MODE_VIA, name_for, tools_to_list
from mcp_hub.pipeline import CallRecord, ToolCalls, argument_details, error_result
from mcp_hub.toolboxes import ToolboxCache
from toolpolicy.names import tool_name
from toolpolicy.request_ids import fresh_request_id
from toolpolicy.runtime import Governance

META_TARGET = "code_mode"
"""The audit target's server part for meta-tool calls (`code_mode/run_code`); no server can be named so."""


class HubTools:
    def __init__(
        self,
        governance: Governance,
        catalog: Catalog,
        calls: ToolCalls,
        engine: CodeMode,
        servers: Collection[str],
        *,
        runs: KeySlots,
    ) -> None:
        self.governance, self.catalog, self.calls, self.engine = governance, catalog, calls, engine
        self.servers = servers
        """The enabled upstreams' names."""
        self.runs = runs
        """The Code Mode runs each key has going (waiting for a sandbox worker or running)."""
        self.toolboxes = ToolboxCache(catalog)

    def list(self, caller: Caller) -> list[types.Tool]:
        """Everything `caller` is shown, named as it will call them."""
        toolbox = self.toolboxes.get(caller)
        meta = self.engine.meta_tools(toolbox) if len(toolbox) else []
        return [*meta, *tools_to_list(caller, self.catalog)]

    def offers_code_mode(self, caller: Caller) -> bool:
        """Whether `caller` sees a server it uses through Code Mode (so meta-tool names are meta-tools)."""
        return any(caller.sees_server(server) and caller.in_code_mode(server) for server in self.servers)

    async def call(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        request_id: str | None = None,
        progress: ProgressFnT | None = None,
        via: str | None = None,
    ) -> types.CallToolResult:
        """Call a listed tool or meta-tool; raises UnknownTool or an AuthenticationError, else a result.

        `via` marks, in the audit record, a direct call made on a client's behalf (agent mode: `"agent"`).
        """
        tool_name(name)  # before a lookup, an audit record or an upstream sees a name that cannot be one
        if name in META_TOOL_NAMES and self.offers_code_mode(caller):
            return await self._meta(caller, name, arguments, request_id or fresh_request_id())
        return await self.calls.call(caller, name, arguments, request_id=request_id, progress=progress, via=via)

    async def _meta(
        self, caller: Caller, name: str, arguments: dict[str, Any] | None, request_id: str
    ) -> types.CallToolResult:
        started = time.perf_counter()
        details = argument_details(arguments, record=self.governance.settings.audit.record_arguments)
        details["tool"] = name
        run_id = uuid.uuid4().hex if name == RUN_CODE else None
        if run_id is not None:
            details["run_id"] = run_id
        record = CallRecord(request_id, caller, f"{META_TARGET}/{name}", details)
        try:
            toolbox = self.toolboxes.get(caller)
            if len(toolbox):
                run = run_id or request_id  # only run_code runs programs; the engine wants an id regardless
                result = await self.engine.call(
                    name, arguments, toolbox, self._program_calls(caller, run), run, admit=self._admit(caller)
                )
            else:
                result = error_result(self._nothing_here(caller))
            record.succeed(result)
            if run_id is not None:
                meta = result.meta or {}
                record.outcome = str(meta.get(OUTCOME_META, "invalid" if result.is_error else "ok"))
                details["tool_calls"] = int(meta.get(TOOL_CALLS_META, 0))
            return result
        except BaseException as exc:
            record.fail(exc)
            raise
        finally:
            self.governance.audit.emit(record.build(time.perf_counter() - started))

    def _admit(self, caller: Caller) -> Callable[[], Slot]:
        def admit() -> Slot:
            return self.runs.acquire(caller.principal)

        return admit

    def _program_calls(self, caller: Caller, run_id: str) -> ToolCaller:
        async def call(server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
            name = name_for(caller, self.catalog, server, tool)
            return await self.calls.call(caller, name, arguments, via=CODE_MODE_VIA, run_id=run_id)

        return call

    def _nothing_here(self, caller: Caller) -> str:
        down = sorted(
            server
            for server in self.servers
            if caller.sees_server(server) and caller.in_code_mode(server) and not self.catalog.is_live(server)
        )
        note = f" (not connected: {', '.join(down)}; try again later)" if down else ""
        return f"No tools are available to this key through Code Mode right now{note}."
