"""A replica's memory following the other replicas' cache writes through PostgreSQL (`sql_tier`), off the request
path: `LISTEN` on one connection held from the store's pool, then load the rows created since this replica last
loaded (less `MARGIN`), so nothing committed in between is missed. Each announced entry is read by its primary
key; removals are applied to memory. After losing the connection, the same again, and entries removed meanwhile
are dropped from memory too.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from llm_proxy.cache.entries import Entry
from llm_proxy.cache.follower import Follower
from llm_proxy.cache.sql_tier import CHANNEL_SQL

if TYPE_CHECKING:
    from llm_proxy.cache.sql_tier import SqlTier
    from llm_proxy.cache.tiers import Local

MARGIN = 60.0
"""Seconds before the newest loaded `created_at` that a (re)load reads again: rows committed late or stamped by a
replica whose clock is behind."""
KEEPALIVE = 30.0
"""Seconds of silence after which the listening connection is checked (a dead one is replaced)."""


class StoreFollower(Follower):
    what = "PostgreSQL"
    errors = (SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    def __init__(self, tier: SqlTier, local: Local) -> None:
        super().__init__(local, tier.reconnect_delay)
        self.tier = tier
        self._listened_before = False
        self.server_pid: int | None = None
        """The PostgreSQL backend listening, while there is one."""

    async def listen(self) -> None:
        async with self.tier.store.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection
            channel = str(await driver.fetchval(f"SELECT {CHANNEL_SQL}"))
            self.server_pid = driver.get_server_pid()
            heard: asyncio.Queue[str | None] = asyncio.Queue()

            def notified(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
                heard.put_nowait(payload)

            def ended(_connection: Any) -> None:
                heard.put_nowait(None)

            driver.add_termination_listener(ended)
            await driver.add_listener(channel, notified)
            try:
                await self._load()
                self.heard()
                await self._apply_forever(driver, heard)
            finally:
                self.server_pid = None
                driver.remove_termination_listener(ended)
                if driver.is_closed():
                    await connection.invalidate()
                else:
                    await driver.remove_listener(channel, notified)

    async def _apply_forever(self, driver: asyncpg.Connection, heard: asyncio.Queue[str | None]) -> None:
        while True:
            try:
                payload = await asyncio.wait_for(heard.get(), KEEPALIVE)
            except TimeoutError:
                await driver.execute("SELECT 1")
                continue
            if payload is None:
                raise ConnectionError("the listening connection closed")
            await self.apply(payload, self.tier.origin)

    async def _load(self) -> None:
        tier, local = self.tier, self.local
        now = local.clock()
        if self._listened_before:
            local.retain(await tier.live_keys(now), searchable_only=False)
        self._listened_before = True
        for entry in await tier.since(tier.loaded_until - MARGIN, local.memory.max_entries, now):
            self._keep(entry)

    def _keep(self, entry: Entry) -> None:
        self.local.keep(entry)
        self.tier.loaded_until = max(self.tier.loaded_until, entry.created_at)

    async def stored(self, payload: str) -> None:
        entry = await self.tier.get(payload, self.local.clock())
        if entry is not None:
            self._keep(entry)
