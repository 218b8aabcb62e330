"""Anthropic's Messages API: spoken natively for `/v1/messages`, translated for chat completions."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, ClassVar

from llm_proxy.errors import UpstreamBadResponse
from llm_proxy.providers.base import (
    MAX_LISTED_MODELS,
    MAX_LISTING_PAGES,
    Attempt,
    Op,
    Reply,
    join_url,
    listed_ids,
    require_list,
    sse_json,
    versioned,
)
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
    lists_models: ClassVar[bool] = True
    default_base_url: ClassVar[str] = "https://api.anthropic.com/v1"

    def __init__(self, name: str, settings: ProviderSettings, upstream: Upstream) -> None:
        self.name = name
        self.upstream = upstream
        # As users copy it from ANTHROPIC_BASE_URL (`https://api.anthropic.com`: the SDK adds `/v1`) or with `/v1`.
        self.base_url = versioned(settings.base_url or self.default_base_url, "v1")
        self.url = join_url(self.base_url, "messages")

    async def list_models(self, key: str | None) -> list[str]:
        """`GET /v1/models`, page after page (`has_more`, `last_id`)."""
        headers = {"anthropic-version": API_VERSION, **({"x-api-key": key} if key else {})}
        url = join_url(self.base_url, "models")
        ids: list[str] = []
        params = {"limit": "1000"}
        for _ in range(MAX_LISTING_PAGES):
            body = await self.upstream.get_json(self.name, url, headers, params)
            if not isinstance(body, dict):
                raise UpstreamBadResponse(f"provider {self.name!r} listed its models in something not an object")
            ids += listed_ids(self.name, body.get("data"), "id")
            last = body.get("last_id")
            if body.get("has_more") is not True or not isinstance(last, str) or len(ids) >= MAX_LISTED_MODELS:
                break
            params = {"limit": "1000", "after_id": last}
        return ids[:MAX_LISTED_MODELS]

    def endpoint(self, attempt: Attempt) -> str:
        return self.url

    async def headers(self, attempt: Attempt, payload: dict[str, Any]) -> dict[str, str]:
        """Version, forwarded client headers, the structured-outputs beta when the payload uses it, and the key."""
        headers = {"anthropic-version": API_VERSION}
        headers.update({name: attempt.headers[name] for name in _FORWARDED if name in attempt.headers})
        if "output_format" in payload:
            betas = [beta for beta in headers.get("anthropic-beta", "").split(",") if beta.strip()]
            headers["anthropic-beta"] = ",".join([*betas, anthropic.STRUCTURED_OUTPUTS_BETA])
        if attempt.key:
            headers["x-api-key"] = attempt.key
        return headers

    def payload(self, attempt: Attempt) -> tuple[dict[str, Any], str | None]:
        if attempt.op == "messages":
            return {**attempt.body, "model": attempt.model}, None
        structured = self.structured_outputs(attempt.model)
        return anthropic.chat_to_messages(attempt.body, attempt.model, structured_outputs=structured)

    def structured_outputs(self, model: str) -> bool:
        """Whether `response_format: json_schema` goes as `output_format` (else as a forced tool)."""
        return anthropic.has_structured_outputs(model)

    async def send(self, attempt: Attempt) -> Reply:
        payload, json_tool = self.payload(attempt)
        payload.pop("stream", None)
        headers = await self.headers(attempt, payload)
        body, raw = await self.upstream.post_json(self.name, self.endpoint(attempt), headers, payload)
        require_list(self.name, body, "content")
        if attempt.op == "messages":
            return Reply(body, anthropic.usage_of(body.get("usage")), raw)
        completion = anthropic.message_to_completion(body, json_tool)
        return Reply(completion, openai_usage(completion.get("usage")))

    async def stream(self, attempt: Attempt) -> AsyncGenerator[dict[str, Any], None]:
        payload, json_tool = self.payload(attempt)
        payload["stream"] = True
        headers = await self.headers(attempt, payload)
        chunks = self.upstream.post_stream(self.name, self.endpoint(attempt), headers, payload)
        translate = EventsToChunks(json_tool) if attempt.op == "chat" else None
        async for name, event in sse_json(self.name, chunks):
            if "type" not in event:
                # A copy, not the object as received: the relay would frame the provider's bytes, without `type`.
                event = {**event, "type": name}
            if event["type"] == "error":
                raise stream_error(event)
            if translate is None:
                yield event
                continue
            for chunk in translate.feed(event):
                yield chunk
