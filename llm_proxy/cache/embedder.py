"""Embeddings for the semantic cache, asked in process through the gateway's own path under the calling key's
governance: its allowlist, rate limits and budgets; each call has its own audit record (`details.cache_embedding`)
and costs what the provider charges."""

from __future__ import annotations

import secrets
from typing import Any

import anyio

from llm_proxy import estimate
from llm_proxy.operations import Direct
from llm_proxy.pipeline import Exchange, Pipeline
from llm_proxy.wire.errors import status_of
from toolpolicy.errors import GatewayError
from toolpolicy.governor import Usage
from toolpolicy.types import Principal


class GatewayEmbedder:
    def __init__(self, pipeline: Pipeline, model: str) -> None:
        self.pipeline = pipeline
        self.model = model

    async def embed(self, principal: Principal, text: str) -> list[float] | None:
        """The text's embedding, or None when the provider answered without one. Denials raise."""
        pipeline = self.pipeline
        exchange = Exchange(request_id=f"cache-embed-{secrets.token_hex(8)}", api="openai", endpoint="embeddings")
        exchange.principal, exchange.requested = principal, self.model
        exchange.details["cache_embedding"] = True
        body: dict[str, Any] = {"model": self.model, "input": text}
        try:
            plan = await pipeline.admit(exchange, [], input_tokens=estimate.request_input(body), max_output_tokens=0)
            operation = Direct("embeddings", body)
            try:
                reply = await pipeline.router.run(
                    plan.targets, plan.admission, exchange.trace, operation.send, operation.supports
                )
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await pipeline.release(exchange)
                raise
            await pipeline.settle(exchange, reply.usage or Usage(tokens_in=estimate.request_input(body)))
        except GatewayError as exc:
            pipeline.fail(exchange, exc, status_of(exc))
            raise
        except Exception:
            pipeline.fail(exchange, GatewayError("the cache's embedding call failed"), 500)
            raise
        finally:
            pipeline.end(exchange)
            pipeline.finish(exchange)
        data = reply.body.get("data") or [{}]
        vector = data[0].get("embedding") if isinstance(data[0], dict) else None
        if not isinstance(vector, list) or not all(isinstance(value, int | float) for value in vector):
            return None
        return [float(value) for value in vector]
