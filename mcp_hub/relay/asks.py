"""An upstream's questions to its client (`sampling/createMessage`, `elicitation/create`, `roots/list`), relayed.

The hub's upstream connection declares every client capability it relays, and a 2025-era upstream knows no other
(a 2026-07-28 one is told the calling client's, `caller_capabilities.py`), so an upstream may ask for something the
client behind this particular call never declared: that client is not asked, and the upstream gets the standard error
(-32601 for sampling or roots, -32602 for an elicitation mode, or sampling with tools, it did not declare). What the
client is asked is the upstream's request as received (an elicitation's `requestedSchema` unchanged); its answer, or
its JSON-RPC error, goes back upstream as it came.

While a sampling or elicitation request waits for its answer (a person may be reading a form), the tool call's own
`timeout` stands still; the wait itself is bounded by the server's `elicitation_timeout`. Each sampling and
elicitation request leaves one audit record (kind `sampling` / `elicitation`) under the tool call's request id, with
the request and the answer only when `audit.record_arguments` is set.

A server configured with `sampling:` has its sampling requests answered by the gateway's own model instead, when
its `when` says so (`gateway_sampling.py`); the audit record then says `served_by: gateway`.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from pydantic import ValidationError

from mcp_hub.relay.calls import AuditSink, Downstream, UpstreamCall
from mcp_hub.relay.gateway_sampling import Served, ServerSampling
from toolpolicy.audit import AuditRecord

logger = logging.getLogger(__name__)

Ask = types.CreateMessageRequest | types.ElicitRequest | types.ListRootsRequest
Answer = types.CreateMessageResult | types.CreateMessageResultWithTools | types.ElicitResult | types.ListRootsResult

UNATTRIBUTED = (
    "the MCP hub cannot tell which of its clients this request is for (calls from several clients are in flight on "
    "this server, or none is), so it asks none of them"
)


MODERN_CLIENT = (
    "the client uses MCP 2026-07-28, which has no channel for the MCP hub to relay a 2025-era server's request on "
    "mid-call"
)


def refusal(request: Ask, capabilities: types.ClientCapabilities | None) -> types.ErrorData | None:
    """The error the upstream gets when the client did not declare what `request` needs, else None."""
    caps = capabilities or types.ClientCapabilities()
    if isinstance(request, types.CreateMessageRequest):
        if caps.sampling is None:
            return types.ErrorData(code=types.METHOD_NOT_FOUND, message="the client does not support sampling")
        if request.params.tools and caps.sampling.tools is None:
            return types.ErrorData(code=types.INVALID_PARAMS, message="the client does not support sampling tools")
        return None
    if isinstance(request, types.ListRootsRequest):
        if caps.roots is None:
            return types.ErrorData(code=types.METHOD_NOT_FOUND, message="the client does not support roots")
        return None
    mode = "url" if isinstance(request.params, types.ElicitRequestURLParams) else "form"
    if mode not in declared_elicitation_modes(caps):
        return types.ErrorData(
            code=types.INVALID_PARAMS, message=f"the client does not support {mode} mode elicitation"
        )
    return None


def declared_elicitation_modes(caps: types.ClientCapabilities) -> set[str]:
    elicitation = caps.elicitation
    if elicitation is None:
        return set()
    if elicitation.form is None and elicitation.url is None:
        return {"form"}  # `elicitation: {}` predates modes and means form
    return {mode for mode, declared in (("form", elicitation.form), ("url", elicitation.url)) if declared is not None}


def kind_of(request: Ask) -> str | None:
    """The audit kind of a request, or None for those not audited (roots: the hub's own bookkeeping)."""
    if isinstance(request, types.CreateMessageRequest):
        return "sampling"
    if isinstance(request, types.ElicitRequest):
        return "elicitation"
    return None


def result_type(request: Ask) -> type[Answer]:
    if isinstance(request, types.CreateMessageRequest):
        return types.CreateMessageResultWithTools if request.params.tools else types.CreateMessageResult
    if isinstance(request, types.ElicitRequest):
        return types.ElicitResult
    return types.ListRootsResult


class Asker:
    """Relays the questions of one upstream to the clients whose calls they belong to."""

    def __init__(
        self,
        server: str,
        *,
        human_timeout: float,
        machine_timeout: float,
    ) -> None:
        self.server = server
        self.human_timeout = human_timeout
        """Seconds a client may take over sampling or elicitation (a person may be involved)."""
        self.machine_timeout = machine_timeout
        """Seconds a client may take to list its roots."""
        self.gateway: ServerSampling | None = None
        """The server's gateway-served sampling (`gateway_sampling`), or None to relay sampling to clients only."""

    async def ask(self, call: UpstreamCall | None, request: Ask, audit: AuditSink) -> Answer | types.ErrorData:
        started = time.perf_counter()
        kind = kind_of(request)
        downstream = call.downstream if call is not None else None
        if call is None or downstream is None:
            logger.warning("MCP server %r sent %s outside a call the hub can attribute", self.server, request.method)
            return types.ErrorData(code=types.INTERNAL_ERROR, message=UNATTRIBUTED)
        outcome: types.ErrorData | Answer
        refused = refusal(request, downstream.capabilities)
        if downstream.modern and refused is None and downstream.held is None:
            # No session and no held call (`rounds.py`): nowhere to put the question.
            refused = refusal(request, None)
            assert refused is not None
            refused = types.ErrorData(code=refused.code, message=MODERN_CLIENT)
        served: Served | None = None
        if self.gateway is not None and self.gateway.answers(request, client_can_answer=refused is None):
            assert isinstance(request, types.CreateMessageRequest)
            served = await self.gateway.serve(call, downstream, request, self.human_timeout)
            outcome, refused = served.outcome, None
        elif refused is not None:
            outcome = refused
        else:
            outcome = await self._forward(call, downstream, request, human=kind is not None)
        if kind is not None:
            elapsed = time.perf_counter() - started
            record = self._record(kind, call, downstream, request, outcome, refused is not None, elapsed, audit)
            audit.emit(served.audited(record) if served is not None else record)
        return outcome

    async def _forward(
        self, call: UpstreamCall, downstream: Downstream, request: Ask, *, human: bool
    ) -> Answer | types.ErrorData:
        metadata = ServerMessageMetadata(related_request_id=downstream.request_id)
        timeout = self.human_timeout if human else self.machine_timeout
        try:
            with call.deadline.paused() if human else nullcontext():
                if downstream.held is not None:
                    # A 2026-07-28 client: the question goes out as an input round, answered on its retry.
                    with call.deadline.paused():
                        return await downstream.held.ask(request, self.human_timeout)
                return await downstream.session.send_request(
                    request, result_type(request), request_read_timeout_seconds=timeout, metadata=metadata
                )
        except MCPError as exc:
            return exc.error
        except ValidationError:
            logger.info("a client answered %s from MCP server %r with an invalid result", request.method, self.server)
            return types.ErrorData(code=types.INTERNAL_ERROR, message="the client's answer is not a valid result")

    def _record(
        self,
        kind: str,
        call: UpstreamCall,
        downstream: Downstream,
        request: Ask,
        outcome: Answer | types.ErrorData,
        refused: bool,
        elapsed: float,
        audit: AuditSink,
    ) -> AuditRecord:
        principal = downstream.caller.principal
        details: dict[str, Any] = {"tool_call_request_id": downstream.call_id, "server": self.server, "tool": call.name}
        if isinstance(request, types.ElicitRequest):
            details["mode"] = "url" if isinstance(request.params, types.ElicitRequestURLParams) else "form"
        if isinstance(outcome, types.ErrorData):
            details["outcome"] = "refused" if refused else "error"
            details["error"] = f"{outcome.code}: {outcome.message}"
            status = 400 if refused else (504 if outcome.code == types.REQUEST_TIMEOUT else 502)
        else:
            details["outcome"] = "ok"
            status = 200
            if isinstance(outcome, types.ElicitResult):
                details["action"] = outcome.action
        if audit.record_content:
            params = request.params
            details["request"] = params.model_dump(by_alias=True, mode="json", exclude_none=True) if params else {}
            if not isinstance(outcome, types.ErrorData):
                details["response"] = outcome.model_dump(by_alias=True, mode="json", exclude_none=True)
        return AuditRecord(
            request_id=downstream.call_id,
            kind=kind,
            target=f"{self.server}/{call.name}",
            decision="deny" if refused else "allow",
            status=status,
            latency_ms=elapsed * 1000,
            key_id=principal.key_id,
            key_name=principal.key_name,
            team=principal.team,
            customer=principal.customer,
            reason="capability_not_declared" if refused else None,
            details=details,
        )
