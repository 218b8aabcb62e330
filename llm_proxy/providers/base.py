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

import asyncio
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import pydantic_core

from llm_proxy.burst import Pending, probe
from llm_proxy.errors import UpstreamBadResponse, UpstreamError
from llm_proxy.streaming import EventSplitter, Received
from llm_proxy.upstream import Upstream
from toolpolicy.governor import Usage
from toolpolicy.settings import ProviderSettings

Op = Literal["chat", "embeddings", "messages", "responses"]

MAX_LISTED_MODELS = 10_000
"""Model ids kept from one provider's listing; an upstream that lists more is cut off there."""
MAX_LISTING_PAGES = 20
"""Pages of a paginated model listing followed at most."""
_API_VERSION = re.compile(r"v\d+(?:alpha|beta)?\d*")
_MODEL_ID = re.compile(r"[\x21-\x7e]{1,256}")
BODY_END_GRACE = 0.25
"""Seconds a streamed body may take to end after OpenAI's `[DONE]` (see `_read_to_end`); past that its connection
is closed, as it would have been without waiting."""
# As ints: `13 in data` is one memchr, where a one-byte `bytes` operand runs the substring search (5-10x the cost).
_CR, _LF = ord("\r"), ord("\n")


# `Attempt` and `Reply` are not frozen: a frozen dataclass sets each field through `object.__setattr__` (five times
# the cost of a plain one), and every request builds one of each. Neither is changed once built.
@dataclass(slots=True)
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


@dataclass(slots=True)
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
    """Models listed by `GET /v1/models` when the provider's config lists none and its own listing is unknown."""
    lists_models: ClassVar[bool]
    """Whether the provider's API says which models it serves (`list_models`)."""

    def __init__(self, name: str, settings: ProviderSettings, upstream: Upstream) -> None: ...

    async def send(self, attempt: Attempt) -> Reply:
        """Answer a non-streaming attempt, or raise an UpstreamError."""
        ...

    def stream(self, attempt: Attempt) -> AsyncGenerator[dict[str, Any], None]:
        """Yield the answer's events as they arrive; errors before the first event allow failover."""
        ...

    async def list_models(self, key: str | None) -> list[str]:
        """The provider's own model ids (every page, at most `MAX_LISTED_MODELS`), or raise an UpstreamError."""
        ...


@runtime_checkable
class ModelOps(Protocol):
    """An adapter whose native operations depend on the model (Vertex AI: Claude models speak Messages)."""

    def ops_for(self, model: str) -> frozenset[Op]:
        """The operations `model` is served in natively; a subset of the adapter's `ops`."""
        ...


def native_ops(adapter: ProviderAdapter, model: str) -> frozenset[Op]:
    """The operations the adapter speaks natively for `model`."""
    return adapter.ops_for(model) if isinstance(adapter, ModelOps) else adapter.ops


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def versioned(base: str, version: str) -> str:
    """`base` without trailing slashes, and with `/<version>` when its last path segment is no API version: the SDKs
    of Anthropic and Google add the version themselves, so `ANTHROPIC_BASE_URL`-style URLs come without one."""
    base = base.rstrip("/")
    last = urlsplit(base).path.rsplit("/", 1)[-1]
    return base if _API_VERSION.fullmatch(last) else f"{base}/{version}"


def listed_ids(provider: str, items: Any, field: str, *, strip: str = "") -> list[str]:
    """The model ids in a listing's array of objects: `item[field]`, less the prefix `strip`. Ids no request could
    name (not 1-256 visible ASCII characters) are left out; an array that is not one is a bad answer."""
    if not isinstance(items, list):
        raise UpstreamBadResponse(f"provider {provider!r} listed its models without an array")
    ids: list[str] = []
    for item in items:
        value = item.get(field) if isinstance(item, dict) else None
        if isinstance(value, str):
            value = value.removeprefix(strip)
            if _MODEL_ID.fullmatch(value):
                ids.append(value)
    return ids


async def sse_json(
    provider: str, chunks: AsyncGenerator[bytes, None]
) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    """Each event of an SSE stream as (event name, JSON object); stops at OpenAI's `[DONE]`."""
    splitter = EventSplitter()
    async with aclosing(chunks):
        async for chunk in chunks:
            for name, data in splitter.feed(chunk):
                if data == b"[DONE]":
                    await _read_to_end(chunks)
                    return
                yield name, event_object(provider, data)
        for name, data in splitter.end():
            if data == b"[DONE]":
                return
            yield name, event_object(provider, data)


async def sse_objects(
    provider: str, chunks: AsyncGenerator[bytes, None], check: Callable[[dict[str, Any]], None]
) -> AsyncGenerator[dict[str, Any], None]:
    """Each event's JSON object of an SSE stream, once `check` (which raises for an error event) has seen it; stops
    at OpenAI's `[DONE]`. For an adapter that needs no event names: its check runs here, not in a generator of its
    own around `sse_json`, which would cost a generator step (and a tuple) per event."""
    splitter = EventSplitter()
    try:  # `async with aclosing(chunks)`, without its two coroutines before the first event
        async for chunk in chunks:
            for _, data in splitter.feed(chunk):
                if data == b"[DONE]":
                    await _read_to_end(chunks)
                    return
                item = event_object(provider, data)
                check(item)
                yield item
        for _, data in splitter.end():
            if data == b"[DONE]":
                return
            item = event_object(provider, data)
            check(item)
            yield item
    finally:
        await chunks.aclose()


async def _read_to_end(chunks: AsyncGenerator[bytes, None]) -> None:
    """The rest of a body whose last event has come, read and dropped: a response released before its end closes
    its connection (aiohttp cannot reuse it), and the provider's next request pays for a new one, a TCP (and TLS)
    handshake on its way to the first byte. The end (the chunked body's last chunk) mostly came with `[DONE]` or
    is a loop turn behind it: no timer is made unless it has to be waited for, and not for long (`BODY_END_GRACE`).
    The stream is complete whatever happens meanwhile: an error in what follows its end is not the client's."""
    try:
        while not isinstance(step := probe(anext(chunks)), Pending):
            pass  # a piece after `[DONE]` (there should be none): dropped
        async with asyncio.timeout(BODY_END_GRACE):
            await step
            async for _ in chunks:
                pass
    except (StopAsyncIteration, TimeoutError, UpstreamError):
        pass


def event_object(provider: str, data: bytes) -> dict[str, Any]:
    """An event's data as a JSON object: a `Received` when the data is one line, to be relayed as it came."""
    try:
        # jiter reads these objects in about a third of the time `json.loads` takes; what it refuses (invalid UTF-8,
        # a lone surrogate escape, very deep nesting) goes to `json.loads` as before, so the same events are read.
        value = pydantic_core.from_json(data, allow_inf_nan=True, cache_strings="keys")
    except ValueError:
        return _decoded_object(provider, data.decode("utf-8", "replace"))
    if not isinstance(value, dict):
        raise UpstreamBadResponse(f"provider {provider!r} streamed JSON that is not an object")
    if _CR in data or _LF in data:
        return value
    received = Received(value)
    received.data = data
    return received


def _decoded_object(provider: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise UpstreamBadResponse(f"provider {provider!r} streamed an event that is not JSON: {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise UpstreamBadResponse(f"provider {provider!r} streamed JSON that is not an object")
    return value


def require_list(provider: str, body: dict[str, Any], name: str) -> None:
    """Garbage check of a provider's answer: `name` must be an array."""
    if not isinstance(body.get(name), list):
        raise UpstreamBadResponse(f"provider {provider!r} answered without a {name!r} array")
