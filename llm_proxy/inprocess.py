"""Chat completions asked in process by another part of the gateway, under the calling key's governance.

The MCP hub's gateway-served sampling answers an upstream's `sampling/createMessage` with one of the proxy's
models. It runs the same pipeline as `POST /v1/chat/completions` (the key's model allowlist, rate limits and
budgets reserved at the worst case and settled to the spend, routing with retries and failover) without an HTTP
round trip to itself, and hands back the provider's chat completion with what it cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio

from llm_proxy import estimate
from llm_proxy.operations import Direct
from llm_proxy.pipeline import Exchange, Pipeline, counted_usage
from toolpolicy.governor import Usage
from toolpolicy.types import Principal


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    body: dict[str, Any]
    """The chat completion as OpenAI shapes it."""
    route: str
    """The model that answered, `provider/model`."""
    usage: Usage
    cost_usd: Decimal | None


class InProcessChat:
    """`complete` one chat request for `principal` through `pipeline`; a denial raises the typed GatewayError."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def complete(self, principal: Principal, request_id: str, body: dict[str, Any]) -> ChatAnswer:
        """`body` is a chat completions request naming its `model` and `max_tokens`."""
        pipeline = self.pipeline
        exchange = Exchange(request_id=request_id, api="openai", endpoint="chat")
        exchange.principal = principal
        exchange.requested = body["model"]
        plan = await pipeline.admit(
            exchange, [], input_tokens=estimate.request_input(body), max_output_tokens=body["max_tokens"]
        )
        operation = Direct("chat", body)
        try:
            reply = await pipeline.router.run(
                plan.targets, plan.admission, exchange.trace, operation.send, operation.supports
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await pipeline.release(exchange)
            raise
        route = exchange.trace.route or body["model"]
        usage = reply.usage or await counted_usage(route, body["messages"], [_first_text(reply.body)])
        await pipeline.settle(exchange, usage)
        return ChatAnswer(reply.body, route, usage, exchange.cost)


def _first_text(completion: dict[str, Any]) -> str:
    choices = completion.get("choices") or [{}]
    content = (choices[0].get("message") or {}).get("content")
    return content if isinstance(content, str) else ""
