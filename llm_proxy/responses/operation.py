"""A Responses API request as an operation the router runs on each target (see `llm_proxy.operations`).

A provider that speaks `responses` (an OpenAI provider whose server has the Responses API) gets the request as the
client sent it, with a previous response's chain expanded into `input` (unless the chain holds the gateway's MCP
items); every other provider gets it translated to
`chat` (`chat.request_to_chat`) and its answer translated back, streams included. The response id and creation time
are minted once per request, so every attempt of a failover answers under the same id.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from llm_proxy.pipeline import counted_usage
from llm_proxy.providers.base import Attempt, ProviderAdapter, Reply
from llm_proxy.responses.chat import completion_to_response, request_to_chat, usage_body
from llm_proxy.responses.events import ChunksToResponseEvents
from llm_proxy.responses.shapes import response_object
from llm_proxy.wire.openai import response_usage_of
from toolpolicy.governor import Usage
from toolpolicy.types import ModelTarget

_NOT_SENT = frozenset({"fallbacks", "previous_response_id"})
"""Request fields the gateway serves itself: they never reach a provider."""


def output_texts(response: dict[str, Any]) -> list[str]:
    """The text and call arguments of a response's output, to count when a provider reports no usage."""
    texts: list[str] = []
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            texts.append(str(item.get("arguments") or ""))
        parts = item.get("content") or ()
        texts.extend(part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str))
    return texts


def upstream_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item as a native provider is sent it: without the id the gateway or a provider gave it, except for
    `reasoning` items, which a provider finds by id."""
    if item.get("type") == "reasoning" or "id" not in item:
        return item
    return {name: value for name, value in item.items() if name != "id"}


class Responses:
    """A Responses request, to any provider."""

    def __init__(
        self,
        body: dict[str, Any],
        items: list[dict[str, Any]],
        *,
        chained: bool,
        response_id: str,
        created_at: int,
    ) -> None:
        self.body = body
        self.items = items
        """All input items: a previous response's chain, then this request's own."""
        self.chained = chained
        """Whether `items` start with a previous response's chain (the native body then carries them)."""
        self.native = not any(str(item.get("type")).startswith("mcp_") for item in items)
        """Whether a native provider may take it: a chain with the gateway's MCP items is always translated (the
        items name the gateway's servers, which the provider does not know)."""
        self.skeleton = response_object(body, response_id=response_id, created_at=created_at, model=str(body["model"]))
        self._chat: dict[str, Any] | None = None

    def chat_body(self) -> dict[str, Any]:
        if self._chat is None:
            self._chat = request_to_chat(self.body, self.items)
        return self._chat

    def native_body(self) -> dict[str, Any]:
        body = {name: value for name, value in self.body.items() if name not in _NOT_SENT}
        if self.chained:
            body["input"] = [upstream_item(item) for item in self.items]
        return body

    def supports(self, adapter: ProviderAdapter) -> bool:
        return "responses" in adapter.ops or "chat" in adapter.ops

    async def count(self, model: str, texts: list[str]) -> Usage:
        return await counted_usage(model, self.chat_body()["messages"], texts)

    async def send(self, adapter: ProviderAdapter, target: ModelTarget, key: str | None) -> Reply:
        """The response object and its usage (counted when the provider reported none)."""
        if "responses" in adapter.ops and self.native:
            reply = await adapter.send(Attempt("responses", target.model, self.native_body(), key))
            usage = reply.usage or await self.count(target.model, output_texts(reply.body))
            return Reply(reply.body, usage)
        reply = await adapter.send(Attempt("chat", target.model, self.chat_body(), key))
        skeleton = {**self.skeleton, "model": target.model}
        response = completion_to_response(reply.body, skeleton, reply.usage or Usage())
        if reply.usage is not None:
            return Reply(response, reply.usage)
        usage = await self.count(target.model, output_texts(response))
        response["usage"] = usage_body(usage, None)
        return Reply(response, usage)

    async def stream(
        self, adapter: ProviderAdapter, target: ModelTarget, key: str | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Responses stream events: the provider's own, or translated from its chat chunks."""
        if "responses" in adapter.ops and self.native:
            attempt = Attempt("responses", target.model, self.native_body(), key, stream=True)
            async with aclosing(adapter.stream(attempt)) as events:
                async for event in events:
                    yield event
            return
        translate = ChunksToResponseEvents({**self.skeleton, "model": target.model})
        async with aclosing(
            adapter.stream(Attempt("chat", target.model, self.chat_body(), key, stream=True))
        ) as chunks:
            async for chunk in chunks:
                for event in translate.feed(chunk):
                    yield event
        usage = translate.usage or await self.count(target.model, translate.texts)
        for event in translate.finish(usage):
            yield event


def usage_of_event(event: dict[str, Any]) -> Usage | None:
    """The usage a terminal stream event's response reports."""
    response = event.get("response")
    return response_usage_of(response.get("usage")) if isinstance(response, dict) else None
