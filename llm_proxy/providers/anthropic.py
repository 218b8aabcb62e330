"""Anthropic's Messages API: spoken natively for `/v1/messages`, translated for chat completions."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, ClassVar

from llm_proxy.providers.base import Attempt, Op, Reply, join_url, require_list, sse_json
from llm_proxy.upstream import Upstream
from llm_proxy.wire import anthropic
from llm_proxy.wire.anthropic_stream import EventsToChunks, stream_error
from llm_proxy.wire.openai import usage_of as openai_usage
from toolpolicy.settings import ProviderSettings

API_VERSION = "2023-06-01"
_FORWARDED = ("anthropic-version", "anthropic-beta")


class AnthropicAdapter:
    kind: ClassVar[str] = "anthropic"
    ops: ClassVar[frozenset[Op]] = frozenset({"chat", "messages"})
    needs_key: ClassVar[bool] = True
    default_models: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str] = "https://api.anthropic.com/v1"

    def __init__(self, name: str, settings: ProviderSettings, upstream: Upstream) -> None:
        self.name = name
        self.upstream = upstream
        self.url = join_url(settings.base_url or self.default_base_url, "messages")

    def headers(self, attempt: Attempt) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        headers.update({name: attempt.headers[name] for name in _FORWARDED if name in attempt.headers})
        if attempt.key:
            headers["x-api-key"] = attempt.key
        return headers

    def payload(self, attempt: Attempt) -> tuple[dict[str, Any], str | None]:
        if attempt.op == "messages":
            return {**attempt.body, "model": attempt.model}, None
        return anthropic.chat_to_messages(attempt.body, attempt.model)

    async def send(self, attempt: Attempt) -> Reply:
        payload, json_tool = self.payload(attempt)
        payload.pop("stream", None)
        body, raw = await self.upstream.post_json(self.name, self.url, self.headers(attempt), payload)
        require_list(self.name, body, "content")
        if attempt.op == "messages":
            return Reply(body, anthropic.usage_of(body.get("usage")), raw)
        completion = anthropic.message_to_completion(body, json_tool)
        return Reply(completion, openai_usage(completion.get("usage")))

    async def stream(self, attempt: Attempt) -> AsyncGenerator[dict[str, Any], None]:
        payload, json_tool = self.payload(attempt)
        payload["stream"] = True
        chunks = self.upstream.post_stream(self.name, self.url, self.headers(attempt), payload)
        translate = EventsToChunks(json_tool) if attempt.op == "chat" else None
        async for name, event in sse_json(self.name, chunks):
            event.setdefault("type", name)
            if event["type"] == "error":
                raise stream_error(event)
            if translate is None:
                yield event
                continue
            for chunk in translate.feed(event):
                yield chunk
