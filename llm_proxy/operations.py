"""What each inbound endpoint asks of an adapter, and the conversions between the client's API and the adapter's.

`/v1/chat/completions` and `/v1/embeddings` speak the adapters' own `chat` and `embeddings` operations.
`/v1/messages` goes to a provider natively when it speaks `messages` (Anthropic), and through `chat` otherwise, with
the request translated once per request and the answer translated back per attempt.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Mapping
from contextlib import aclosing
from typing import Any, Protocol

from llm_proxy.errors import UpstreamBadResponse
from llm_proxy.providers.base import Attempt, Op, ProviderAdapter, Reply, native_ops
from llm_proxy.routing import Router, Trace
from llm_proxy.wire import anthropic_inbound
from llm_proxy.wire.anthropic_stream import ChunksToEvents
from toolpolicy.governor import Admission
from toolpolicy.types import ModelTarget

_ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")


class Operation(Protocol):
    def supports(self, adapter: ProviderAdapter) -> bool: ...

    def send(self, adapter: ProviderAdapter, target: ModelTarget, key: str | None) -> Awaitable[Reply]: ...

    def stream(
        self, adapter: ProviderAdapter, target: ModelTarget, key: str | None
    ) -> AsyncGenerator[dict[str, Any], None]: ...


def _without_fallbacks(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name != "fallbacks"} if "fallbacks" in body else body


class Direct:
    """The client's body goes to the adapter's operation of the same format (chat, embeddings)."""

    def __init__(self, op: Op, body: dict[str, Any]) -> None:
        self.op = op
        self.body = _without_fallbacks(body)

    def supports(self, adapter: ProviderAdapter) -> bool:
        return self.op in adapter.ops

    def send(self, adapter: ProviderAdapter, target: ModelTarget, key: str | None) -> Awaitable[Reply]:
        # The adapter's own coroutine, not one of ours awaiting it: a frame less on every resumption of the request.
        return adapter.send(Attempt(self.op, target.model, self.body, key))

    def stream(
        self, adapter: ProviderAdapter, target: ModelTarget, key: str | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        return adapter.stream(Attempt(self.op, target.model, self.body, key, stream=True))


class Messages:
    """An Anthropic Messages request, to any provider."""

    def __init__(self, body: dict[str, Any], headers: Mapping[str, str], *, input_tokens: int = 0) -> None:
        self.body = _without_fallbacks(body)
        self.headers = {name: headers[name] for name in _ANTHROPIC_HEADERS if name in headers}
        self.input_tokens = input_tokens
        self._chat: dict[str, Any] | None = None

    def chat_body(self) -> dict[str, Any]:
        if self._chat is None:
            self._chat = anthropic_inbound.messages_to_chat(self.body, str(self.body.get("model")))
        return self._chat

    def supports(self, adapter: ProviderAdapter) -> bool:
        return "messages" in adapter.ops or "chat" in adapter.ops

    async def send(self, adapter: ProviderAdapter, target: ModelTarget, key: str | None) -> Reply:
        if "messages" in native_ops(adapter, target.model):
            return await adapter.send(Attempt("messages", target.model, self.body, key, headers=self.headers))
        reply = await adapter.send(Attempt("chat", target.model, self.chat_body(), key))
        thinking = anthropic_inbound.wants_thinking(self.body)
        return Reply(anthropic_inbound.completion_to_message(reply.body, target.model, thinking=thinking), reply.usage)

    def stream(
        self, adapter: ProviderAdapter, target: ModelTarget, key: str | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        if "messages" in native_ops(adapter, target.model):
            # The provider's own events, with no generator of ours in between to step through for each.
            return adapter.stream(Attempt("messages", target.model, self.body, key, stream=True, headers=self.headers))
        return self._translated(adapter, target, key)

    async def _translated(
        self, adapter: ProviderAdapter, target: ModelTarget, key: str | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        thinking = anthropic_inbound.wants_thinking(self.body)
        translate = ChunksToEvents(target.model, input_tokens=self.input_tokens, thinking=thinking)
        async with aclosing(
            adapter.stream(Attempt("chat", target.model, self.chat_body(), key, stream=True))
        ) as chunks:
            async for chunk in chunks:
                for event in translate.feed(chunk):
                    yield event
        for event in translate.finish():
            yield event


async def open_stream(
    items: AsyncGenerator[dict[str, Any], None],
) -> tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]]:
    """Wait for the first item, so that a failure before it can still fail over to another target."""
    try:
        first = await anext(items)
    except StopAsyncIteration:
        raise UpstreamBadResponse("the provider ended the stream without sending anything") from None
    except BaseException:
        await items.aclose()
        raise
    return items, first


async def first_stream(
    router: Router, targets: list[ModelTarget], admission: Admission, trace: Trace, operation: Operation
) -> tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]]:
    """The stream of the first target along the chain that opens one: a target failing before its first item
    fails over to the next, as a non-streamed attempt would."""

    async def open_target(adapter: ProviderAdapter, target: ModelTarget, key: str | None) -> Any:
        return await open_stream(operation.stream(adapter, target, key))

    streamed: tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]] = await router.run(
        targets, admission, trace, open_target, operation.supports
    )
    return streamed
