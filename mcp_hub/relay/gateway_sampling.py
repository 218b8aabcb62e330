"""Gateway-served sampling: the gateway answers an upstream's `sampling/createMessage` with one of its own models.

Per MCP server, `sampling: {model, max_tokens, when}` (`toolpolicy.sampling_settings`) says when: `never` relays to
the calling client only (the relay's behaviour without the block), `client_lacks` relays when the client can be
asked (it declared sampling and has a channel mid-call) and answers itself otherwise, `always` answers itself.

The answer goes through the LLM proxy's own pipeline, in-process (`llm_proxy.inprocess`, wired by the app as a
`ChatCompletions`: the hub imports nothing of the proxy): the calling key's model allowlist, its rate limits
and budgets (reserved at the worst case, then settled, so the spend is charged to the key), routing with retries and
failover. A denial (model not allowed, budget spent, rate limited) or a failed provider goes back upstream as a
JSON-RPC error whose message says why; what the tool call then reports is the upstream's business. The relay audits
the request as kind `sampling` under the tool call's request id, with `served_by: gateway`, the model that answered,
its tokens and its cost (`Served.audited`).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

import anyio
import mcp_types as types

from mcp_hub.relay.calls import Downstream, UpstreamCall
from mcp_hub.relay.sampling_wire import Untranslatable, chat_body, create_message_result
from toolpolicy.audit import AuditRecord
from toolpolicy.errors import GatewayError
from toolpolicy.governor import Usage
from toolpolicy.sampling_settings import SamplingSettings
from toolpolicy.types import Principal

logger = logging.getLogger(__name__)

NO_LLM_PROXY = "the gateway answers this server's sampling requests itself, but it runs no LLM proxy to answer with"


@dataclass(frozen=True)
class Served:
    """A sampling request the gateway answered (or refused), with what its audit record adds."""

    outcome: types.CreateMessageResult | types.ErrorData
    model: str
    """The model that answered (`provider/model`), else the configured one."""
    status: int = 200
    reason: str | None = None
    """The denial's or failure's reason, as the LLM proxy audits it (`model_not_allowed`, `limit_exceeded`...)."""
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: Decimal | None = None

    def audited(self, record: AuditRecord) -> AuditRecord:
        """The relay's `sampling` record of this request, completed with how the gateway served it."""
        denied = 400 <= self.status < 500
        details = {**record.details, "served_by": "gateway", "model": self.model}
        if denied:
            details["outcome"] = "refused"
        return replace(
            record,
            decision="deny" if denied else "allow",
            status=self.status,
            reason=self.reason,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            cost_usd=self.cost_usd,
            details=details,
        )


class ChatAnswer(Protocol):
    @property
    def body(self) -> dict[str, Any]:
        """The chat completion as OpenAI shapes it."""

    @property
    def route(self) -> str:
        """The model that answered, `provider/model`."""

    @property
    def usage(self) -> Usage: ...

    @property
    def cost_usd(self) -> Decimal | None: ...


class ChatCompletions(Protocol):
    """Chat completions for a key, governed as its own LLM requests (a denial raises the typed GatewayError)."""

    async def complete(self, principal: Principal, request_id: str, body: dict[str, Any]) -> ChatAnswer: ...


class GatewayLlm:
    """What the hub's gateway-served sampling answers with; None until the gateway wires the LLM proxy in."""

    def __init__(self) -> None:
        self.chat: ChatCompletions | None = None

    async def complete(
        self, settings: SamplingSettings, downstream: Downstream, params: types.CreateMessageRequestParams
    ) -> Served:
        """Answer `params` with the configured model, governed as the calling key's own LLM request."""
        if self.chat is None:
            return Served(types.ErrorData(code=types.INTERNAL_ERROR, message=NO_LLM_PROXY), settings.model, 503)
        try:
            body = chat_body(params, settings.max_tokens)
        except Untranslatable as exc:
            return Served(types.ErrorData(code=types.INVALID_PARAMS, message=str(exc)), settings.model, 400)
        try:
            return await _complete(self.chat, settings.model, downstream, body)
        except GatewayError as exc:
            message = f"the gateway refused or failed this sampling request: {exc.message}"
            error = types.ErrorData(code=exc.jsonrpc_code, message=message, data={"reason": exc.reason})
            return Served(error, settings.model, exc.status, exc.reason)


async def _complete(chat: ChatCompletions, model: str, downstream: Downstream, body: dict[str, Any]) -> Served:
    # Its own governor request id: reservations and spend entries are keyed by it, and a tool call may sample often.
    request_id = f"{downstream.call_id}.sampling-{secrets.token_hex(4)}"
    answer = await chat.complete(downstream.caller.principal, request_id, {**body, "model": model})
    result = create_message_result(answer.body, answer.route)
    usage = answer.usage
    return Served(
        result, answer.route, tokens_in=usage.tokens_in, tokens_out=usage.tokens_out, cost_usd=answer.cost_usd
    )


@dataclass(frozen=True)
class ServerSampling:
    """One MCP server's `sampling:` block and the LLM it is served with."""

    settings: SamplingSettings
    llm: GatewayLlm

    def answers(self, request: Any, *, client_can_answer: bool) -> bool:
        """Whether the gateway, not the client, answers `request` (only sampling requests are ever answered)."""
        if not isinstance(request, types.CreateMessageRequest) or self.settings.when == "never":
            return False
        return self.settings.when == "always" or not client_can_answer

    async def serve(
        self, call: UpstreamCall, downstream: Downstream, request: types.CreateMessageRequest, timeout: float
    ) -> Served:
        # The model's time is not the tool's: the call's own deadline stands still, as while a client answers.
        with call.deadline.paused(), anyio.move_on_after(timeout) as scope:
            return await self.llm.complete(self.settings, downstream, request.params)
        assert scope.cancelled_caught
        message = f"the gateway's model did not answer within {timeout:g} s"
        return Served(types.ErrorData(code=types.REQUEST_TIMEOUT, message=message), self.settings.model, 504)
