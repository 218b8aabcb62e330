"""Cache entries in Redis, shared by every replica: an entry one replica stored is a hit on another. Each entry is
one string (`<prefix><entry key>`, JSON) with Redis's own expiry; a replica reads Redis when its memory misses."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from llm_proxy.cache.entries import Entry


class RedisTier:
    name = "redis"
    read_on_miss = True

    def __init__(self, url: str, prefix: str) -> None:
        self.redis = aioredis.from_url(url)
        self.prefix = prefix

    async def get(self, key: str, now: float) -> Entry | None:
        raw = await self.redis.get(self.prefix + key)
        if raw is None:
            return None
        entry = Entry.from_json(json.loads(raw))
        return entry if entry.expires_at > now else None

    async def put(self, entry: Entry) -> None:
        ttl = max(1, int(entry.expires_at - entry.created_at))
        await self.redis.set(self.prefix + entry.key, json.dumps(entry.to_json()), ex=ttl)

    async def discard(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)

    async def _keys(self) -> list[bytes]:
        return [key async for key in self.redis.scan_iter(match=self.prefix + "*", count=1000)]

    async def delete(self, key_name: str | None, model: str | None) -> int:
        doomed = []
        for key in await self._keys():
            if key_name is None and model is None:
                doomed.append(key)
                continue
            raw = await self.redis.get(key)
            if raw is None:
                continue
            data = json.loads(raw)
            if (key_name is None or data["key_name"] == key_name) and (model is None or data["model"] == model):
                doomed.append(key)
        return int(await self.redis.delete(*doomed)) if doomed else 0

    async def count(self, now: float) -> int:
        return len(await self._keys())

    async def newest(self, limit: int, now: float) -> list[Entry]:
        """Nothing is preloaded: a replica reads Redis on a memory miss."""
        return []

    async def close(self) -> None:
        await self.redis.aclose()
