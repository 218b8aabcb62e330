"""One governed tool call, from every edge (MCP, REST, Code Mode programs): resolve, admit, call, settle, audit.

The order, and why:

1. resolve the name against what this caller may see: a tool it may not use gets the very error of a tool that does
   not exist, so listing and calling leak nothing;
2. `governor.admit`: the decision API, rate limits and budget reservations (a denial by policy is answered as an
   unknown tool, a limit as a tool error naming the limit);
3. the upstream call, with the server's timeout, progress relayed, cancellation passed upstream;
4. `settle` with the server's `cost_per_call_usd` once the upstream answered (a tool error is still work done), or
   `release` when it did not;
5. one audit record, whatever happened (in `finally`).

An upstream's failure is a tool error (`isError`, the model reads it), except a JSON-RPC error that is about the
request itself rather than the tool's work (`PROTOCOL_ERRORS`): that one is raised, and reaches the client as the
JSON-RPC error the upstream sent, code and data.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from contextlib import nullcontext
from decimal import Decimal
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT
from opentelemetry.trace import INVALID_SPAN

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog
from mcp_hub.errors import (
    CodeModeOnly,
    UnknownTool,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from mcp_hub.guard import check_arguments, check_result, tool_scan
from mcp_hub.listing import named_target, resolve_tool
from mcp_hub.relay.rounds import InputRequired
from mcp_hub.upstreams import Upstream
from mcp_hub.upstreams.oauth import acting_as
from toolpolicy.audit import AuditRecord
from toolpolicy.errors import GatewayError, GuardrailBlocked, LimitExceeded, PermissionDenied
from toolpolicy.governor import Call, Usage
from toolpolicy.json_text import compact_encoder
from toolpolicy.request_ids import fresh_request_id
from toolpolicy.runtime import Governance
from toolpolicy.telemetry.tracing import mark_error, nothing_to_trace, operation_span, span_under
from toolpolicy.types import Principal, ToolTarget

CANCELLED_STATUS = 499
PROTOCOL_ERRORS = frozenset({types.MISSING_REQUIRED_CLIENT_CAPABILITY})
"""Upstream JSON-RPC error codes a tool call passes on as JSON-RPC errors: the client must see them as such (a
2026-07-28 client that lacks a capability the tool needs gets -32021 with `data.requiredCapabilities`)."""


_canonical = compact_encoder(sort_keys=True, ensure_ascii=False)
"""`json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)`."""


_NO_USAGE = Usage()
"""What a call to a server without `cost_per_call_usd` used (`Usage(cost_usd=None)`), made once: it is frozen."""

_QUIET = nullcontext(INVALID_SPAN)
"""A span skipped (`nothing_to_trace`): what `operation_span` and `span_under` give then."""


def _call_attributes(caller: Caller, name: str, via: str | None, run_id: str | None) -> dict[str, Any]:
    """The attributes of a call's operation span, those with no value left out (as the span helpers would leave
    them out, but without filtering a second mapping on every traced call)."""
    principal = caller.principal
    attributes: dict[str, Any] = {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
    }
    if principal.key_name is not None:
        attributes["isthmus.key.name"] = principal.key_name
    if principal.team is not None:
        attributes["isthmus.team"] = principal.team
    if principal.customer is not None:
        attributes["isthmus.customer"] = principal.customer
    if via is not None:
        attributes["isthmus.via"] = via
    if run_id is not None:
        attributes["isthmus.run_id"] = run_id
    return attributes


def error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def argument_details(arguments: dict[str, Any] | None, *, record: bool) -> dict[str, Any]:
    """The audit details of a call's arguments: size and SHA-256 of their canonical JSON, and themselves if `record`."""
    canonical = _canonical(arguments or {})
    # Arguments built in Code Mode may hold lone surrogates: hash them as they are rather than fail the call.
    encoded = canonical.encode(errors="surrogatepass")
    details: dict[str, Any] = {"arguments_size": len(encoded), "arguments_sha256": hashlib.sha256(encoded).hexdigest()}
    if record:
        details["arguments"] = arguments or {}
    return details


class ToolCalls:
    def __init__(self, governance: Governance, catalog: Catalog, upstreams: Mapping[str, Upstream]) -> None:
        self.governance = governance
        self.catalog = catalog
        self.upstreams = upstreams

    async def call(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        request_id: str | None = None,
        progress: ProgressFnT | None = None,
        via: str | None = None,
        run_id: str | None = None,
    ) -> types.CallToolResult:
        """Call `name` as `caller` would see it; raises UnknownTool or an AuthenticationError, else a result.

        `via="code_mode"` marks a call made by a Code Mode program (only those reach tools served through Code
        Mode), and `run_id` names the run; both go into the audit record.
        """
        started = time.perf_counter()
        request_id = request_id or fresh_request_id()
        details = argument_details(arguments, record=self.governance.settings.audit.record_arguments)
        if via is not None:
            details["via"] = via
        if run_id is not None:
            details["run_id"] = run_id
        server, tool = named_target(caller, name)
        details["server"], details["tool"] = server, tool
        target = f"{server}/{tool}" if server else tool
        record = CallRecord(request_id, caller, target, details)
        # Checked once for the call's two spans: with nothing to trace here, there is nothing under it either (the
        # call's own steps start no span), and neither span's name and attributes are built.
        quiet = nothing_to_trace()
        with (
            _QUIET
            if quiet
            else operation_span(f"tools/call {name}", _call_attributes(caller, name, via, run_id)) as span
        ):
            try:
                return await self._call(caller, name, arguments, record, progress, via, quiet)
            except BaseException as exc:
                if record.outcome is None:
                    record.fail(exc)
                raise
            finally:
                self.governance.audit.emit(record.build(time.perf_counter() - started))
                if not quiet and span.is_recording():
                    span.set_attributes(
                        {
                            "isthmus.mcp.server": record.details.get("server") or "",
                            "isthmus.outcome": record.outcome or "",
                            "isthmus.request_id": request_id,
                        }
                    )
                    if record.decision == "deny" or record.outcome not in ("ok", "tool_error"):
                        mark_error(span, record.reason or record.outcome or "error")

    async def _call(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any] | None,
        record: CallRecord,
        progress: ProgressFnT | None,
        via: str | None,
        quiet: bool,
    ) -> types.CallToolResult:
        try:
            entry = resolve_tool(caller, self.catalog, name, via=via)
        except UnknownTool as exc:
            server, tool = named_target(caller, name)
            upstream = self.upstreams.get(server) if server and not isinstance(exc, CodeModeOnly) else None
            if upstream is not None and not self.catalog.is_live(upstream.name) and caller.may_use(upstream.name, tool):
                # A server that is down (and never listed this tool, or is still starting): say so, not "unknown";
                # one that waits for its first OAuth authorization says where this key's owner authorizes.
                down: UpstreamError = UpstreamUnavailable(
                    upstream.name, upstream.health.state, upstream.health.last_error
                )
                if upstream.credentials is not None:
                    try:
                        with acting_as(caller.principal):
                            await upstream.credentials.ready_for_call()
                    except UpstreamError as failure:
                        down = failure
                record.upstream_failed(down)
                return error_result(down.message)
            record.deny(exc)
            raise
        upstream = self.upstreams[entry.server]
        record.target = f"{entry.server}/{entry.name}"
        # A catalogued tool: bounded, so its name may label metrics.
        details = record.details
        details["server"], details["tool"], details["route"] = entry.server, entry.name, record.target
        cost = upstream.settings.cost_per_call_usd
        fixed = Decimal(str(cost)) if cost > 0 else None
        call = Call(
            record.request_id, caller.principal, ToolTarget(entry.server, entry.name), fixed_cost_usd=fixed, via=via
        )
        try:
            admission = await self.governance.governor.admit(call)
        except PermissionDenied as exc:
            record.deny(exc)
            raise UnknownTool(name, hidden=True) from None
        except LimitExceeded as exc:
            record.deny(exc)
            later = f"; try again in {math.ceil(exc.retry_after)}s" if exc.retry_after else ""
            return error_result(f"Tool call refused: {exc.message}{later}")
        except GatewayError as exc:
            record.deny(exc)
            raise
        guardrails = self.governance.guardrails
        inbound = tool_scan(
            guardrails,
            caller.principal,
            "tool_input",
            request_id=record.request_id,
            server=entry.server,
            target=record.target,
        )
        if inbound is not None:
            try:
                arguments = await check_arguments(inbound, arguments)
            except GuardrailBlocked as exc:  # after the allowlist (which hides tools), before the upstream
                with anyio.CancelScope(shield=True):
                    await admission.release()
                record.deny(exc)
                return error_result(exc.message)
        upstream_started = time.perf_counter()
        try:
            # The SDK puts this span's traceparent into the upstream request's `_meta`.
            with (
                _QUIET
                if quiet
                else span_under(
                    None,
                    f"tools/call {entry.name}",
                    {
                        "mcp.method.name": "tools/call",
                        "gen_ai.tool.name": entry.name,
                        "isthmus.mcp.server": entry.server,
                    },
                )
            ):
                # `quiet`: checked once above, for the call's spans and the upstream request's.
                if upstream.credentials is None:
                    result = await upstream.call_tool(entry.name, arguments, progress, quiet=quiet)
                else:
                    with acting_as(caller.principal):  # an OAuth upstream gets this key's token (`upstreams/oauth`)
                        result = await upstream.call_tool(entry.name, arguments, progress, quiet=quiet)
        except UpstreamError as exc:
            record.details["upstream_ms"] = (time.perf_counter() - upstream_started) * 1000
            with anyio.CancelScope(shield=True):
                await admission.release()
            record.upstream_failed(exc)
            if isinstance(exc, UpstreamRejected) and exc.upstream_code in PROTOCOL_ERRORS:
                raise
            return error_result(exc.message)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await admission.release()
            raise
        record.details["upstream_ms"] = (time.perf_counter() - upstream_started) * 1000
        record.cost_usd = await admission.settle(_NO_USAGE if fixed is None else Usage(cost_usd=fixed))
        outbound = tool_scan(
            guardrails,
            caller.principal,
            "tool_output",
            request_id=record.request_id,
            server=entry.server,
            target=record.target,
        )
        if outbound is not None:
            try:
                result = await check_result(outbound, result)
            except GuardrailBlocked as exc:  # the tool's work is done (and charged); its result is not passed on
                result = error_result(exc.message)
        record.succeed(result)
        return result


class CallRecord:
    """The audit record of one call, filled in as the call goes."""

    def __init__(self, request_id: str, caller: Caller, target: str, details: dict[str, Any]) -> None:
        # Positional: a class called with keywords builds a dict of them (about 450 Ir a keyword; once a call).
        self.request_id = request_id
        self.caller = caller
        self.target = target
        self.details = details
        self.outcome: str | None = None
        self.decision = "allow"
        self.status = 200
        self.reason: str | None = None
        self.cost_usd: Decimal | None = None

    def deny(self, error: GatewayError) -> None:
        hidden = isinstance(error, UnknownTool) and error.hidden
        self.outcome, self.decision, self.reason = "denied", "deny", error.reason
        self.status = PermissionDenied.status if hidden else error.status

    def upstream_failed(self, error: UpstreamError) -> None:
        self.outcome = "timeout" if isinstance(error, UpstreamTimeout) else "upstream_error"
        self.status, self.reason = error.status, error.reason
        self.details["error"] = error.message

    def succeed(self, result: types.CallToolResult) -> None:
        """An answered call; `result_size` is the length, in characters, of the result's JSON as the hub writes it
        (`result.model_dump_json(by_alias=True, exclude_none=True)`)."""
        self.outcome = "tool_error" if result.is_error else "ok"
        self.details["result_size"] = json_length(result)

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, InputRequired):
            self.outcome, self.status = "input_required", 200  # the client answers, then calls again
        elif isinstance(exc, anyio.get_cancelled_exc_class()):
            self.outcome, self.status, self.reason = "cancelled", CANCELLED_STATUS, "cancelled"
        else:
            self.outcome, self.status, self.reason = "upstream_error", 500, type(exc).__name__

    def build(self, elapsed: float) -> AuditRecord:
        """The call's record; a call made with an OAuth token names its client and subject too."""
        principal = self.caller.principal
        # By position, in the record's field order (request id, kind, target, decision, status, latency, key id, key
        # name, team, customer, reason, tokens in, tokens out, cost, details): a class called with keywords builds a
        # dict of them, which with thirteen of them costs about as much as the rest of making the record.
        return AuditRecord(
            self.request_id,
            "tool_call",
            self.target,
            self.decision,
            self.status,
            elapsed * 1000,
            principal.key_id,
            principal.key_name,
            principal.team,
            principal.customer,
            self.reason,
            None,
            None,
            self.cost_usd,
            {**self.details, "outcome": self.outcome, **oauth_details(principal)},
        )


def json_length(result: types.CallToolResult) -> int:
    """`len(result.model_dump_json(by_alias=True, exclude_none=True))`, without decoding the JSON to text: its
    UTF-8 bytes are as many as its characters when all are ASCII (most results), else it is decoded to count them."""
    encoded = result.__pydantic_serializer__.to_json(result, by_alias=True, exclude_none=True)
    return len(encoded) if encoded.isascii() else len(encoded.decode())


def oauth_details(principal: Principal) -> dict[str, str]:
    """`oauth_client`, `subject` and `oauth_issuer` of a caller signed in with a token; nothing for a key."""
    via = principal.oauth
    if via is None:
        return {}
    return {"oauth_client": via.client_id, "subject": via.subject, "oauth_issuer": via.issuer}
