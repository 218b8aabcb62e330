"""The response cache: where a request's lookup happens, what a hit sends, and where entries are kept.

A lookup runs after the key, the body, guardrails on input and the allowlist (a cached answer was scanned on output
when it was first produced), and before admission: a hit reserves nothing and counts against no budget or rate
limit, and never calls a provider. Entries live in an in-process LRU, in front of an optional shared tier (the
store, Redis) written off the request path (`tiers`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from llm_proxy.cache import replay
from llm_proxy.cache.embedder import GatewayEmbedder
from llm_proxy.cache.entries import Entry, MemoryEntries, matching
from llm_proxy.cache.fence import ClearFence
from llm_proxy.cache.keying import EntryKey, entry_key
from llm_proxy.cache.lookup import OFF, Lookup, Question
from llm_proxy.cache.semantic import group_of, question_text
from llm_proxy.cache.tiers import Local, SharedTier
from llm_proxy.json_answer import json_answer
from llm_proxy.pipeline import Exchange, Pipeline
from llm_proxy.streaming import DONE, EventStreamResponse, data_frame, event_frame
from llm_proxy.upstream import dumps
from llm_proxy.wire import openai
from toolpolicy.cache_settings import CacheSettings, parse_duration
from toolpolicy.errors import GatewayError, InvalidRequest
from toolpolicy.governor import Usage
from toolpolicy.types import ModelTarget, Principal

if TYPE_CHECKING:
    from llm_proxy.cache.vectors import VectorIndex

logger = logging.getLogger(__name__)

CONTROL_HEADER = "x-isthmus-cache"
TTL_HEADER = "x-isthmus-cache-ttl"
SIMILARITY_HEADER = "x-isthmus-cache-similarity"
CONTROLS = frozenset({"no-cache", "no-store", "refresh"})
SEMANTIC_ROUTES = frozenset({"chat", "messages", "responses"})
"""Routes whose questions the semantic cache embeds (embeddings are cached exactly only)."""
RENEWED = frozenset({"id", "created"})
"""Fields of a chat or Messages answer each hit gets afresh (a new id; chat's `created`, now)."""
ID_PREFIXES = {"chat": b"chatcmpl-", "messages": b"msg_"}
Save = Callable[[dict[str, Any]], Awaitable[None]]


class ResponseCache:
    def __init__(
        self,
        pipeline: Pipeline,
        settings: CacheSettings,
        *,
        shared: SharedTier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.clock = clock
        """Wall-clock seconds: entry expiry and creation times (injected by tests)."""
        self.index: VectorIndex | None = None
        """The semantic cache's vectors of the entries in memory (only with `semantic` configured)."""
        if settings.semantic is not None:
            from llm_proxy.cache.vectors import VectorIndex  # numpy and usearch: loaded for a semantic cache only

            self.index = VectorIndex()
        self.memory = MemoryEntries(settings.max_entries, clock, on_remove=self._forget)
        self._wire: dict[str, tuple[Entry, bytes]] = {}
        """By entry key: the entry, and its body as JSON without the fields a hit renews (`wire_body`), made at its
        first non-stream hit so that the next ones send bytes rather than encode the body again."""
        self.shared = shared
        semantic = settings.semantic
        self.embedder = GatewayEmbedder(pipeline, semantic.embedding_model) if semantic is not None else None
        self.stats = {"hits": 0, "semantic_hits": 0, "misses": 0, "bypasses": 0, "stores": 0}
        self._writes: set[asyncio.Task[None]] = set()
        self.fence = ClearFence()
        """What makes `DELETE /admin/cache` win over the writes under way (`fence`)."""

    # --- lookup ----------------------------------------------------------------------------------------------------

    async def lookup(
        self,
        exchange: Exchange,
        route: str,
        headers: Mapping[str, str],
        body: dict[str, Any],
        save: Save | None = None,
        *,
        fallbacks: list[str],
    ) -> Lookup:
        """The request's lookup; `lookup.response` is set on a hit. `save` stores a hit's Responses object;
        `fallbacks` are the request's own, which a hit may have been answered by."""
        principal = exchange.principal
        if principal is None or not self.settings.exact:
            return OFF
        control = headers.get(CONTROL_HEADER)
        if control is not None and control not in CONTROLS:
            raise InvalidRequest(f"header {CONTROL_HEADER} must be no-cache, no-store or refresh", param=CONTROL_HEADER)
        ttl = self._ttl(principal, headers.get(TTL_HEADER))
        if principal.cache is False or self._skipped(route, principal, body):
            return self._bypass(exchange)
        # Judged as admission would judge them: a request it would refuse is never answered from the cache.
        model, fallbacks = self.pipeline.authorized(principal, exchange.requested, fallbacks)
        exchange.requested = model
        key = entry_key(principal, self.settings.scope, route, model, body)
        question = self._question(key, body)
        generation = self.fence.generation
        if control is None or control == "no-store":
            entry = self.memory.get(key.text())
            if entry is None and self.shared is not None and self.shared.read_on_miss:
                entry = await self.shared.get(key.text(), self.clock())
                if entry is not None and self.fence.cleared_since(generation, entry):
                    entry = None  # read before a clear that ended while the read was under way
                if entry is not None:
                    self._keep(entry)
            similarity: float | None = None
            if entry is None and question is not None:
                entry, similarity, question = await self._nearest(principal, question)
            if entry is not None and not self._servable(principal, entry, model, fallbacks):
                entry, similarity = None, None
                exchange.details["cache_refused"] = "answered by a model the key may not use"
            if entry is not None:
                lookup = Lookup(None, None, None, writes=False, ttl=0.0)
                lookup.response = await self._hit(exchange, entry, body, save, similarity)
                return lookup
            self._mark(exchange, "miss")
        else:
            if control == "refresh":
                self._drop(key.text())
            self._mark(exchange, "bypass")
        writes = control != "no-store"
        return Lookup(self, exchange, key, writes=writes, ttl=ttl, question=question, generation=generation)

    def _servable(self, principal: Principal, entry: Entry, model: str, fallbacks: list[str]) -> bool:
        """Whether the calling key could have been answered by the model that answered the entry: a target of the
        requested model or alias, or of its own fallbacks, or a model its allowlist names. An entry shared in a
        team, customer or global scope may have been answered by another key's fallback."""
        answered_by = entry.answered_by
        if answered_by == model or principal.models.matches(answered_by):
            return True
        try:
            targets = self.pipeline.router.targets(model, fallbacks)
        except GatewayError:
            return False  # a name no longer configured (a reload): the request fails on its own path
        return any(target.name == answered_by for target in targets)

    def _question(self, key: EntryKey, body: dict[str, Any]) -> Question | None:
        """The request's semantic question (its hard-filter group and text), when the semantic cache takes it."""
        if self.settings.semantic is None or key.route not in SEMANTIC_ROUTES:
            return None
        text = question_text(key.route, body, self.settings.semantic.max_messages)
        return None if text is None else Question(group_of(key, body), text)

    async def _nearest(
        self, principal: Principal, question: Question
    ) -> tuple[Entry | None, float | None, Question | None]:
        """The entry answering a question near enough in meaning, its similarity, and the question with its
        vector (reused when the answer is stored). An embedding failure leaves the request an exact miss."""
        assert self.embedder is not None and self.settings.semantic is not None
        try:
            vector = await self.embedder.embed(principal, question.text)
        except Exception as exc:
            logger.warning("the cache's embedding call failed; exact lookup only: %s", exc)
            return None, None, question
        if vector is None:
            return None, None, question
        question = replace(question, vector=vector)
        assert self.index is not None
        match = self.index.search(question.group, vector)
        if match is None or match[1] < self.settings.semantic.threshold:
            return None, None, question
        entry = self.memory.get(match[0])
        return entry, (match[1] if entry is not None else None), question

    def _ttl(self, principal: Principal, header: str | None) -> float:
        if header is not None:
            try:
                ttl = parse_duration(int(header) if header.isdigit() else header)
            except ValueError:
                ttl = -1.0
            if not 0 < ttl <= self.settings.max_ttl:
                raise InvalidRequest(
                    f"header {TTL_HEADER} must be seconds from 1 to {int(self.settings.max_ttl)}", param=TTL_HEADER
                )
            return ttl
        own = principal.cache
        if isinstance(own, dict) and isinstance(own.get("ttl"), int | float):
            return float(own["ttl"])
        return self.settings.ttl

    def _skipped(self, route: str, principal: Principal, body: dict[str, Any]) -> bool:
        """Whether the request is never cached: agent mode, output rules, a skip rule. Embeddings are exempt from
        all three: no agent runs on them, no output rule scans vectors, and they take no temperature or tools."""
        if route == "embeddings":
            return False
        if principal.agent is not None or self._guarded(principal):
            return True
        rules = self.settings.skip_when
        temperature = body.get("temperature")
        if rules.temperature_above is not None and isinstance(temperature, int | float):
            if temperature > rules.temperature_above:
                return True
        return rules.tools and bool(body.get("tools"))

    def _guarded(self, principal: Principal) -> bool:
        """Whether output guardrail rules apply to the key. Its requests neither read nor write entries: an entry
        may have been stored for a key with other rules (a shared scope), and a hit would skip the key's own."""
        return bool(self.pipeline.governance.guardrails.rules_for(principal, "output"))

    def _bypass(self, exchange: Exchange) -> Lookup:
        self._mark(exchange, "bypass")
        return OFF

    def _mark(self, exchange: Exchange, outcome: str) -> None:
        exchange.response_headers[CONTROL_HEADER] = outcome
        exchange.details["cache"] = outcome
        self.stats["misses" if outcome == "miss" else "bypasses"] += 1

    # --- a hit ---------------------------------------------------------------------------------------------------

    async def _hit(
        self, exchange: Exchange, entry: Entry, request: dict[str, Any], save: Save | None, similarity: float | None
    ) -> tuple[Response, bool]:
        outcome = "hit" if similarity is None else "semantic-hit"
        self.stats["hits" if similarity is None else "semantic_hits"] += 1
        exchange.response_headers[CONTROL_HEADER] = outcome
        exchange.details.update(cache=outcome, cache_saved_usd=entry.cost_usd)
        if similarity is not None:
            exchange.response_headers[SIMILARITY_HEADER] = f"{similarity:.4f}"
            exchange.details["cache_similarity"] = round(similarity, 4)
        exchange.trace.route = entry.answered_by
        exchange.cost = Decimal(0)
        now = int(self.clock())
        if not exchange.stream and save is None:
            exchange.mark_first_byte()
            return json_answer(self._wire_body(entry, now), exchange.headers()), False
        body = self._fresh(entry, now)
        if save is not None:
            await save(body)
        exchange.mark_first_byte()
        if not exchange.stream:
            return json_answer(dumps(body), exchange.headers()), False
        frames = self._frames(exchange, entry.route, body, openai.wants_usage(request))

        async def close() -> None:
            self.pipeline.end(exchange)
            self.pipeline.finish(exchange)

        return EventStreamResponse(frames, headers=exchange.headers(), on_close=close), True

    def _wire_body(self, entry: Entry, now: int) -> bytes:
        """What `_fresh` gives, as JSON bytes: the renewed fields first, then the rest encoded once per entry."""
        held = self._wire.get(entry.key)
        if held is None or held[0] is not entry:
            rest = dumps({name: value for name, value in entry.body.items() if name not in RENEWED})
            held = self._wire[entry.key] = (entry, rest)
        rest = held[1]
        if entry.route == "embeddings":
            return rest
        renewed = b'{"id":"' + ID_PREFIXES[entry.route] + secrets.token_hex(12).encode() + b'"'
        if entry.route == "chat":
            renewed += b',"created":' + str(now).encode()
        return renewed + (b"}" if rest == b"{}" else b"," + rest[1:])

    def _fresh(self, entry: Entry, now: int) -> dict[str, Any]:
        if entry.route == "embeddings":
            return entry.body  # no id to renew; sent as it is, never changed
        if entry.route == "responses":
            return replay.fresh_response(entry.body, now)
        body = {**entry.body, "id": ID_PREFIXES[entry.route].decode() + secrets.token_hex(12)}
        if entry.route == "chat":
            body["created"] = now
        return body

    @staticmethod
    async def _frames(
        exchange: Exchange, route: str, body: dict[str, Any], include_usage: bool
    ) -> AsyncGenerator[bytes, None]:
        if route == "chat":
            for chunk in replay.chat_chunks(body, include_usage=include_usage):
                yield data_frame(chunk)
            yield DONE
            return
        events = replay.message_events(body) if route == "messages" else replay.response_events(body)
        for event in events:
            yield event_frame(event)

    # --- storage -------------------------------------------------------------------------------------------------

    def cost(self, target: ModelTarget, usage: Usage) -> Decimal:
        price = self.pipeline.governance.governor.price(target)
        if price is None:
            return Decimal(0)
        return price.cost(usage.tokens_in, usage.tokens_out, usage.cached_tokens)

    def put(
        self,
        entry: Entry,
        principal: Principal | None = None,
        question: Question | None = None,
        *,
        generation: int | None = None,
    ) -> None:
        """Keep `entry` in memory now, and in the shared tier off the request path; a semantic question without
        its vector yet is embedded off the request path too, under `principal`. `generation` is the fence's when
        the request looked up (default: now): a clear since then that matches the entry drops it."""
        generation = self.fence.generation if generation is None else generation
        if self.fence.cleared_since(generation, entry):
            return
        self.stats["stores"] += 1
        if question is not None:
            entry = replace(entry, group=question.group, vector=question.vector)
        self._keep(entry)
        if question is not None and question.vector is None and principal is not None:
            self._spawn(self._embed_later(entry, principal, question.text, generation))
        elif self.shared is not None:
            self._spawn(self._land(entry, generation))

    async def _land(self, entry: Entry, generation: int) -> None:
        """Write `entry` to the shared tier unless a clear came since `generation`; a clear that comes while the
        write is under way waits for it, then deletes."""
        assert self.shared is not None
        if self.fence.cleared_since(generation, entry):
            return
        async with self.fence.landing():
            await self.shared.put(entry)

    def _keep(self, entry: Entry) -> None:
        self.memory.put(entry)
        if self.index is None or entry.group is None or entry.vector is None:
            return
        if self.memory.get(entry.key) is entry:
            self.index.add(entry.group, entry.key, entry.vector)

    def _forget(self, key: str) -> None:
        """An entry left memory: its encoded body and its vector go too."""
        self._wire.pop(key, None)
        if self.index is not None:
            self.index.remove(key)

    async def _embed_later(self, entry: Entry, principal: Principal, text: str, generation: int) -> None:
        assert self.embedder is not None
        vector = await self.embedder.embed(principal, text)
        if vector is not None:
            entry = replace(entry, vector=vector)
            if self.memory.get(entry.key) is not None:
                self._keep(entry)
        if self.shared is not None:
            await self._land(entry, generation)

    def _drop(self, key: str) -> None:
        self.memory.discard(key)
        if self.shared is not None:
            self._spawn(self.shared.discard(key))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                logger.exception("a cache write failed (the entry stays in this replica's memory)")

        task = asyncio.get_running_loop().create_task(run())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def drain(self) -> None:
        """Wait for the writes under way (at shutdown, and in tests)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def start(self) -> None:
        """Load the shared tier's newest live entries into memory (a restart keeps the cache), then follow what
        other replicas store and remove."""
        if self.shared is not None:
            for entry in await self.shared.newest(self.settings.max_entries, self.clock()):
                self._keep(entry)
            await self.shared.follow(Local(self.memory, self._keep, self.fence.clear))

    async def stop(self) -> None:
        await self.drain()
        if self.shared is not None:
            await self.shared.close()

    # --- admin ---------------------------------------------------------------------------------------------------

    async def clear(self, key_name: str | None = None, model: str | None = None) -> int:
        """Remove entries (all, or those one key stored, or of one model); the count removed from memory."""
        self.fence.clear(key_name, model)  # from here on, no write of a request that looked up before lands
        removed = self.memory.delete(matching(key_name, model))
        if self.shared is not None:
            await self.fence.settled()
            removed = max(removed, await self.shared.delete(key_name, model))
        return removed

    async def describe(self) -> dict[str, Any]:
        lookups = self.stats["hits"] + self.stats["semantic_hits"] + self.stats["misses"]
        return {
            "entries": len(self.memory),
            "max_entries": self.settings.max_entries,
            "shared": self.shared.name if self.shared is not None else None,
            "shared_entries": await self.shared.count(self.clock()) if self.shared is not None else None,
            "scope": self.settings.scope,
            "ttl": self.settings.ttl,
            **self.stats,
            "semantic_entries": len(self.index) if self.index is not None else 0,
            "hit_ratio": round((self.stats["hits"] + self.stats["semantic_hits"]) / lookups, 4) if lookups else None,
        }
