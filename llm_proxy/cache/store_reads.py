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
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Held] = []

    async def entry(self, key: str) -> tuple[dict[str, Any], float] | None:
        """The row's entry JSON and expiry, or None: absent, or the store failed (logged; the request is a miss).
        A connection that failed goes back to the pool invalidated."""
        async with self._slots:
            try:
                held = self._idle.pop() if self._idle else await self._open()
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("the cache could not read the store on a miss: %s", exc)
                return None
            try:
                row = await held[1].fetchrow(READ, key)
            except BaseException as exc:
                await held[0].invalidate()
                await held[0].close()
                if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                    logger.warning("the cache could not read the store on a miss: %s", exc)
                    return None
                raise
            self._idle.append(held)
        if row is None:
            return None
        entry = row["entry"]
        return (json.loads(entry) if isinstance(entry, str) else entry), float(row["expires_at"])

    async def _open(self) -> Held:
        connection = await self.store.engine.connect()
        raw = await connection.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        return connection, driver

    async def close(self) -> None:
        while self._idle:
            connection, _ = self._idle.pop()
            await connection.close()
