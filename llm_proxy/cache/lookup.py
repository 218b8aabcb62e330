"""One request's dealings with the cache: a hit served at once, or a miss whose answer is stored when it is complete.

`Lookup.store` takes a non-stream answer; `Lookup.watch` wraps a stream's items so that the answer is assembled as
the relay sees it and stored only when the stream ended normally with a successful finish.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llm_proxy.cache.assemble import assembler, complete_body
from llm_proxy.cache.entries import Entry
from llm_proxy.cache.keying import EntryKey
from llm_proxy.wire import anthropic, openai
from toolpolicy.governor import Usage
from toolpolicy.types import ModelTarget

if TYPE_CHECKING:
    from llm_proxy.cache.cache import ResponseCache
    from llm_proxy.pipeline import Exchange

logger = logging.getLogger(__name__)


def usage_of(route: str, body: dict[str, Any]) -> Usage | None:
    usage = body.get("usage")
    if route in ("chat", "embeddings"):
        return openai.usage_of(usage)
    if route == "messages":
        return anthropic.usage_of(usage)
    return openai.response_usage_of(usage)


@dataclass(frozen=True, slots=True)
class Question:
    """A request's question for the semantic cache: its hard-filter group, its text, and its embedding once made."""

    group: str
    text: str
    vector: list[float] | None = None


class Lookup:
    """A miss (or a request the cache does not read): `store`/`watch` write its answer unless told not to."""

    def __init__(
        self,
        cache: ResponseCache | None,
        exchange: Exchange | None,
        key: EntryKey | None,
        *,
        writes: bool,
        ttl: float,
        question: Question | None = None,
        generation: int = 0,
    ) -> None:
        self.cache = cache
        self.exchange = exchange
        self.key = key
        self.writes = writes and cache is not None and key is not None
        self.ttl = ttl
        self.question = question
        """The semantic question, stored with the answer (embedded off the request path if it is not yet)."""
        self.generation = generation
        """The cache's clear generation when the request looked up: a clear since then drops its answer."""
        self.response: Any = None
        """For a hit: `(Response, relayed)` to return as the route's answer."""

    def store(self, body: dict[str, Any]) -> None:
        """Store a non-stream answer if it is complete and successful."""
        if self.writes and self.key is not None and complete_body(self.key.route, body):
            self._put(body)

    def watch(
        self, items: AsyncGenerator[dict[str, Any], None], first: dict[str, Any]
    ) -> tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]]:
        """`items` and `first`, seen on their way to the relay; the answer is stored when the stream completes."""
        if not self.writes or self.key is None:
            return items, first
        assembled = assembler(self.key.route)
        assembled.see(first)

        async def seen() -> AsyncGenerator[dict[str, Any], None]:
            async with aclosing(items):
                async for item in items:
                    assembled.see(item)
                    yield item
            body = assembled.result()
            if body is not None:
                self._put(body)

        return seen(), first

    def _put(self, body: dict[str, Any]) -> None:
        assert self.cache is not None and self.key is not None and self.exchange is not None
        usage = usage_of(self.key.route, body)
        if usage is None:
            return
        principal = self.exchange.principal
        answered_by = self.exchange.trace.route or self.key.model
        cost = self.cache.cost(ModelTarget.parse(answered_by), usage) if "/" in answered_by else Decimal(0)
        now = self.cache.clock()
        entry = Entry(
            key=self.key.text(),
            route=self.key.route,
            model=self.key.model,
            key_name=principal.key_name if principal is not None else "",
            answered_by=answered_by,
            body=body,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            cost_usd=str(cost),
            created_at=now,
            expires_at=now + self.ttl,
        )
        self.cache.put(entry, principal, self.question, generation=self.generation)


OFF = Lookup(None, None, None, writes=False, ttl=0.0)
"""The lookup of a request the cache takes no part in."""

Clock = Callable[[], float]
