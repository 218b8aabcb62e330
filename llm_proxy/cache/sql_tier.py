"""Cache entries in the gateway's store: written off the request path, loaded at start, so a restart keeps the
cache. Expired rows are removed when entries are written.

On PostgreSQL, which several replicas share, the store is a live shared tier: a memory miss reads it (one
primary-key query), and each write of a searchable entry, each removal, is announced with `NOTIFY` in the
writing transaction, so every replica's memory and vector index follow (`store_follow`). On SQLite (one process)
the store is only loaded at start.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from llm_proxy.cache.entries import Entry
from llm_proxy.cache.tiers import Local, Tasks
from toolpolicy.store.engine import Store
from toolpolicy.store.schema import CacheEntryRow

if TYPE_CHECKING:
    from llm_proxy.cache.store_follow import StoreFollower
    from llm_proxy.cache.store_reads import StoreReads

CHANNEL_SQL = "'isthmus_cache_' || left(md5(current_schema()), 16)"
"""The `NOTIFY` channel: one per schema, so gateways on other schemas of one database do not hear each other."""


class SqlTier:
    name = "store"

    def __init__(self, store: Store, *, read_on_miss: bool = True, reconnect_delay: float = 1.0) -> None:
        self.store = store
        self.live = store.backend == "postgresql"
        """Shared live: read on a miss, changes announced and followed (PostgreSQL)."""
        self.read_on_miss = self.live and read_on_miss
        self.reads: StoreReads | None = None
        """Reads of one entry (a miss, an announced entry), on connections held for them (PostgreSQL)."""
        if self.live:
            from llm_proxy.cache.store_reads import StoreReads  # asyncpg: PostgreSQL only

            self.reads = StoreReads(store)
        self.origin = uuid.uuid4().hex
        """This replica's id in announcements: its own come back to it and are skipped."""
        self.reconnect_delay = reconnect_delay
        self.loaded_until = 0.0
        """The newest `created_at` this replica has loaded: a reconnect loads what is newer (less a margin)."""
        self.tasks = Tasks()
        self.follower: StoreFollower | None = None

    async def get(self, key: str, now: float) -> Entry | None:
        if self.reads is not None:
            found = await self.reads.entry(key)
            return None if found is None or found[1] <= now else Entry.from_json(found[0])
        async with self.store.session() as session:
            row = await session.get(CacheEntryRow, key)
        return None if row is None or row.expires_at <= now else Entry.from_json(row.entry)

    async def _announce(self, session: AsyncSession, change: str, payload: str) -> None:
        """Tell the other replicas, when the transaction commits (`NOTIFY` is transactional)."""
        if self.live:
            message = f"{self.origin} {change} {payload}"
            await session.execute(text(f"SELECT pg_notify({CHANNEL_SQL}, :message)"), {"message": message})

    async def put(self, entry: Entry) -> None:
        async with self.store.writing() as session:
            await session.execute(delete(CacheEntryRow).where(CacheEntryRow.expires_at <= entry.created_at))
            row = await session.get(CacheEntryRow, entry.key)
            if row is not None:
                await session.delete(row)
                await session.flush()
            session.add(
                CacheEntryRow(
                    key=entry.key,
                    key_name=entry.key_name,
                    model=entry.model,
                    created_at=entry.created_at,
                    expires_at=entry.expires_at,
                    entry=entry.to_json(),
                )
            )
            if entry.searchable:
                await self._announce(session, "put", entry.key)

    async def discard(self, key: str) -> None:
        async with self.store.writing() as session:
            await session.execute(delete(CacheEntryRow).where(CacheEntryRow.key == key))
            await self._announce(session, "discard", key)

    async def delete(self, key_name: str | None, model: str | None) -> int:
        statement = delete(CacheEntryRow)
        if key_name is not None:
            statement = statement.where(CacheEntryRow.key_name == key_name)
        if model is not None:
            statement = statement.where(CacheEntryRow.model == model)
        async with self.store.writing() as session:
            result = await session.execute(statement)
            await self._announce(session, "delete", json.dumps({"key_name": key_name, "model": model}))
        return int(getattr(result, "rowcount", 0) or 0)

    async def count(self, now: float) -> int:
        async with self.store.session() as session:
            total = await session.scalar(select(func.count()).where(CacheEntryRow.expires_at > now))
        return int(total or 0)

    async def newest(self, limit: int, now: float) -> list[Entry]:
        statement = (
            select(CacheEntryRow.entry)
            .where(CacheEntryRow.expires_at > now)
            .order_by(CacheEntryRow.created_at.desc())
            .limit(limit)
        )
        async with self.store.session() as session:
            rows = (await session.execute(statement)).scalars().all()
        entries = [Entry.from_json(row) for row in reversed(rows)]
        self.loaded_until = max([self.loaded_until, *(entry.created_at for entry in entries)])
        return entries

    async def since(self, created_after: float, limit: int, now: float) -> list[Entry]:
        """The newest `limit` live entries created after `created_after`, oldest first (`created_at` is indexed:
        run at start and after a reconnect)."""
        statement = (
            select(CacheEntryRow.entry)
            .where(CacheEntryRow.expires_at > now, CacheEntryRow.created_at > created_after)
            .order_by(CacheEntryRow.created_at.desc())
            .limit(limit)
        )
        async with self.store.session() as session:
            rows = (await session.execute(statement)).scalars().all()
        return [Entry.from_json(row) for row in reversed(rows)]

    async def live_keys(self, now: float) -> list[str]:
        async with self.store.session() as session:
            rows = await session.execute(select(CacheEntryRow.key).where(CacheEntryRow.expires_at > now))
            return list(rows.scalars())

    async def follow(self, local: Local) -> None:
        self.tasks.sweep(local)
        if self.live:
            from llm_proxy.cache.store_follow import StoreFollower

            self.follower = StoreFollower(self, local)
            self.tasks.start(self.follower.run(), "cache changes from the store")
            await self.follower.started()

    async def close(self) -> None:
        """Stops following and lets go of held connections; the store is the gateway's: it closes it."""
        await self.tasks.stop()
        if self.reads is not None:
            await self.reads.close()
