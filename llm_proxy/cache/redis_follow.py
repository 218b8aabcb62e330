"""A replica's memory following the other replicas' cache writes through Redis (`redis_tier`), off the request path.

Subscribe first, then load the searchable entries, so nothing announced in between is missed; the same after
losing Redis and getting it back, when searchable entries removed meanwhile are dropped from memory too.
Best effort: a removal announced while this replica could not hear it is caught up at the reconnect's load for
searchable entries; an exact-only copy this replica had read lives out its TTL.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from llm_proxy.cache.entries import Entry
from llm_proxy.cache.follower import Follower, text_of

if TYPE_CHECKING:
    from llm_proxy.cache.redis_tier import RedisTier
    from llm_proxy.cache.tiers import Local

LOAD_BATCH = 256
"""Entries read per MGET while loading."""


class RedisFollower(Follower):
    what = "Redis"
    errors = (RedisError, OSError)

    def __init__(self, tier: RedisTier, local: Local) -> None:
        super().__init__(local, tier.reconnect_delay)
        self.tier = tier

    async def listen(self) -> None:
        async with self.tier.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.tier.channel)
            await self._load()
            self.heard()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    await self.apply(message["data"], self.tier.origin)

    async def _load(self) -> None:
        redis, tier, local = self.tier.redis, self.tier, self.local
        now = local.clock()
        await redis.zremrangebyscore(tier.searchable, "-inf", now)
        members = await redis.zrangebyscore(tier.searchable, now, "+inf")
        live = [text_of(key) for key in members if isinstance(key, bytes | str)]
        local.retain(live, searchable_only=True)
        newest = live[-local.memory.max_entries :]  # the latest to expire, oldest first: they end most recently used
        for start in range(0, len(newest), LOAD_BATCH):
            batch = newest[start : start + LOAD_BATCH]
            for raw in await redis.mget([tier.prefix + key for key in batch]):
                if raw is not None:
                    local.keep(Entry.from_json(json.loads(raw)))

    async def stored(self, payload: str) -> None:
        self.local.keep(Entry.from_json(json.loads(payload)))
