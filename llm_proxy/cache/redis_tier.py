"""Cache entries in Redis, shared by every replica: an entry one replica stored is a hit on another. Each entry is
one string (`<prefix><entry key>`, JSON) with Redis's own expiry; a replica reads Redis when its memory misses.

Searchable entries (with a semantic group and vector) are also listed in the sorted set `<prefix>~searchable`
(scored by expiry) and announced on the channel `<prefix>~changes`, as are removals: every replica keeps them in
memory and in its vector index, so a semantic lookup never leaves the process (`redis_follow`).
"""

from __future__ import annotations

import json
import uuid

import redis.asyncio as aioredis

from llm_proxy.cache.entries import Entry
from llm_proxy.cache.tiers import Local, Tasks

SEARCHABLE = "~searchable"
"""Suffix of the sorted set of searchable entry keys, scored by `expires_at`: what a starting replica loads."""
CHANGES = "~changes"
"""Suffix of the pub/sub channel: `<origin> put <entry JSON>`, `<origin> discard <entry key>`,
`<origin> delete {"key_name": …, "model": …}`."""


class RedisTier:
    name = "redis"
    read_on_miss = True

    def __init__(self, url: str, prefix: str, *, reconnect_delay: float = 1.0) -> None:
        self.redis = aioredis.from_url(url, socket_connect_timeout=2.0)
        self.prefix = prefix
        self.searchable = prefix + SEARCHABLE
        self.channel = prefix + CHANGES
        self.origin = uuid.uuid4().hex
        """This replica's id on the channel: its own announcements come back to it and are skipped."""
        self.reconnect_delay = reconnect_delay
        self.tasks = Tasks()

    async def get(self, key: str, now: float) -> Entry | None:
        raw = await self.redis.get(self.prefix + key)
        if raw is None:
            return None
        entry = Entry.from_json(json.loads(raw))
        return entry if entry.expires_at > now else None

    def _announcement(self, change: str, payload: str) -> str:
        return f"{self.origin} {change} {payload}"

    async def put(self, entry: Entry) -> None:
        ttl = max(1, int(entry.expires_at - entry.created_at))
        data = json.dumps(entry.to_json())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.prefix + entry.key, data, ex=ttl)
            if entry.searchable:
                pipe.zremrangebyscore(self.searchable, "-inf", entry.created_at)
                pipe.zadd(self.searchable, {entry.key: entry.expires_at})
                pipe.publish(self.channel, self._announcement("put", data))
            await pipe.execute()

    async def discard(self, key: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.prefix + key)
            pipe.zrem(self.searchable, key)
            pipe.publish(self.channel, self._announcement("discard", key))
            await pipe.execute()

    async def _keys(self) -> list[bytes]:
        own = self.searchable.encode()
        return [key async for key in self.redis.scan_iter(match=self.prefix + "*", count=1000) if key != own]

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
        async with self.redis.pipeline(transaction=True) as pipe:
            if doomed:
                pipe.delete(*doomed)
            if key_name is None and model is None:
                pipe.delete(self.searchable)
            elif doomed:
                pipe.zrem(self.searchable, *[key[len(self.prefix.encode()) :] for key in doomed])
            filters = json.dumps({"key_name": key_name, "model": model})
            pipe.publish(self.channel, self._announcement("delete", filters))
            results = await pipe.execute()
        return int(results[0]) if doomed else 0

    async def count(self, now: float) -> int:
        return len(await self._keys())

    async def newest(self, limit: int, now: float) -> list[Entry]:
        """Nothing is preloaded here: `follow` loads the searchable entries once it listens, and a replica reads
        Redis on a memory miss."""
        return []

    async def follow(self, local: Local) -> None:
        from llm_proxy.cache.redis_follow import RedisFollower

        follower = RedisFollower(self, local)
        self.tasks.start(follower.run(), "cache changes from Redis")
        self.tasks.sweep(local)
        await follower.started()

    async def close(self) -> None:
        await self.tasks.stop()
        await self.redis.aclose()
