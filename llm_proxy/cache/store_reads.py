"""The read of one cache entry by key on a memory miss, on PostgreSQL: a prepared statement on a few connections
held from the store's pool.

Through a SQLAlchemy session the same read costs about 1.2 ms of CPU (a pool checkout with its pre-ping, the ORM),
four times the whole budget of a miss; on a held connection with asyncpg's statement cache it costs about 0.04 ms
(docs/cache.md, "Storage").
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import asyncpg
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from toolpolicy.store.engine import Store

logger = logging.getLogger(__name__)

READ = "SELECT entry, expires_at FROM cache_entries WHERE key = $1"
READERS = 4
"""Connections held at most: concurrent misses beyond this wait for one."""

Held = tuple[AsyncConnection, asyncpg.Connection]


class StoreReads:
    def __init__(self, store: Store, size: int = READERS) -> None:
        self.store = store
        self.size = size
        self._idle: asyncio.Queue[Held] = asyncio.Queue()
        self._held = 0

    async def entry(self, key: str) -> tuple[dict[str, Any], float] | None:
        """The row's entry JSON and expiry, or None: absent, or the store failed (logged; the request is a miss).
        A connection that failed goes back to the pool invalidated."""
        try:
            held = await self._take()
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("the cache could not read the store on a miss: %s", exc)
            return None
        try:
            row = await held[1].fetchrow(READ, key)
        except BaseException as exc:
            self._held -= 1
            await held[0].invalidate()
            await held[0].close()
            if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                logger.warning("the cache could not read the store on a miss: %s", exc)
                return None
            raise
        self._idle.put_nowait(held)
        if row is None:
            return None
        entry = row["entry"]
        return (json.loads(entry) if isinstance(entry, str) else entry), float(row["expires_at"])

    async def _take(self) -> Held:
        if self._idle.empty() and self._held < self.size:
            self._held += 1
            try:
                connection = await self.store.engine.connect()
                raw = await connection.get_raw_connection()
            except BaseException:
                self._held -= 1
                raise
            driver: asyncpg.Connection = raw.driver_connection
            return connection, driver
        return await self._idle.get()

    async def close(self) -> None:
        while not self._idle.empty():
            connection, _ = self._idle.get_nowait()
            self._held -= 1
            await connection.close()
