"""Cache entries in the gateway's store (SQLite by default): written off the request path, loaded at start, so a
restart keeps the cache. Expired rows are removed when entries are written."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from llm_proxy.cache.entries import Entry
from toolpolicy.store.engine import Store
from toolpolicy.store.schema import CacheEntryRow


class SqlTier:
    name = "store"
    read_on_miss = False

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, key: str, now: float) -> Entry | None:
        async with self.store.session() as session:
            row = await session.get(CacheEntryRow, key)
        return None if row is None or row.expires_at <= now else Entry.from_json(row.entry)

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

    async def discard(self, key: str) -> None:
        async with self.store.writing() as session:
            await session.execute(delete(CacheEntryRow).where(CacheEntryRow.key == key))

    async def delete(self, key_name: str | None, model: str | None) -> int:
        statement = delete(CacheEntryRow)
        if key_name is not None:
            statement = statement.where(CacheEntryRow.key_name == key_name)
        if model is not None:
            statement = statement.where(CacheEntryRow.model == model)
        async with self.store.writing() as session:
            result = await session.execute(statement)
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
        return [Entry.from_json(row) for row in reversed(rows)]

    async def close(self) -> None:
        """The store is the gateway's: it closes it."""
