"""The one interface every provider implements, and what crosses it.

An adapter speaks one or more *operations* natively, each in a fixed wire format:

- `chat`: OpenAI chat completions (request body, response body, stream chunks);
- `embeddings`: OpenAI embeddings;
- `messages`: Anthropic Messages (request body, response body, stream events as dicts with a `type`);
- `responses`: OpenAI Responses (request body, response object, stream events as dicts with a `type`).

The pipeline converts between the client's format and the operation the adapter speaks, so an adapter only turns
an operation into its provider's HTTP request and the answer back (URL, headers, body, usage).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from llm_proxy.errors import UpstreamBadResponse
from llm_proxy.streaming import sse_events
from llm_proxy.upstream import Upstream
from toolpolicy.governor import Usage
from toolpolicy.settings import ProviderSettings

Op = Literal["chat", "embeddings", "messages", "responses"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request to one provider with one key."""

    op: Op
    model: str
    """The provider's own model name (no `provider/` prefix)."""
    body: dict[str, Any]
    """The request in the operation's wire format; adapters set the model themselves."""
    key: str | None
    """The provider API key to use, or None for a provider that needs none."""
    stream: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    """Client headers a provider may forward (`anthropic-version`, `anthropic-beta`)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete answer in the operation's wire format."""

    body: dict[str, Any]
    usage: Usage | None
    """Tokens as the provider reported them, or None when it reported none."""
    raw: bytes | None = None
    """The provider's bytes when they already are `body` in the operation's format: sent to the client untouched."""


class ProviderAdapter(Protocol):
    """Sends operations to one configured provider over the shared upstream client."""

    kind: ClassVar[str]
    ops: ClassVar[frozenset[Op]]
    """Operations this provider serves."""
    needs_key: ClassVar[bool]
    default_models: ClassVar[tuple[str, ...]]
    """Models listed by `GET /v1/models` when the provider's config lists none."""

    def __init__(self, name: str, settings: ProviderSettings, upstream: Upstream) -> None: ...

    async def send(self, attempt: Attempt) -> Reply:
        """Answer a non-streaming attempt, or raise an UpstreamError."""
        ...

    def stream(self, attempt: Attempt) -> AsyncGenerator[dict[str, Any], None]:
        """Yield the answer's events as they arrive; errors before the first event allow failover."""
        ...


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


async def sse_json(
    provider: str, chunks: AsyncGenerator[bytes, None]
) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    """Each event of an SSE stream as (event name, JSON object); stops at OpenAI's `[DONE]`."""
    async with aclosing(chunks), aclosing(sse_events(chunks)) as events:
        async for event in events:
            if event.data == "[DONE]":
                return
            try:
                data = json.loads(event.data)
            except ValueError:
                snippet = event.data[:80]
                raise UpstreamBadResponse(
                    f"provider {provider!r} streamed an event that is not JSON: {snippet!r}"
                ) from None
            if not isinstance(data, dict):
                raise UpstreamBadResponse(f"provider {provider!r} streamed JSON that is not an object")
            yield event.event, data


def require_list(provider: str, body: dict[str, Any], name: str) -> None:
    """Garbage check of a provider's answer: `name` must be an array."""
    if not isinstance(body.get(name), list):
        raise UpstreamBadResponse(f"provider {provider!r} answered without a {name!r} array")
