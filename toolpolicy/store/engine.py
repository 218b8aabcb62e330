"""Opening the store, migrating it, and checking it is reachable.

Alembic (with Mako and Pygments behind it, about 11 MiB resident) is imported only to migrate: a store already at
`HEAD_REVISION` is recognised with one query, so a gateway restarting on a migrated store never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from toolpolicy import store_schema

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same on every replica that migrates the same database.
_MIGRATION_LOCK_ID = 0x15_7E_05
HEAD_REVISION = "0011"
"""The newest migration in `migrations/versions` (a test holds the two together): a new migration updates it."""
VERSION_TABLE = "alembic_version"


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _at_head(connection: Connection) -> bool:
    """Whether the store is at `HEAD_REVISION` (read as Alembic would: its one-row version table)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return False
    versions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return list(versions) == [HEAD_REVISION]


def _upgrade(connection: Connection) -> None:
    if _at_head(connection):
        return
    from alembic import command

    if connection.dialect.name == "postgresql":
        # Replicas starting together must not run the same migration twice.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    command.upgrade(_alembic_config(connection), "head")


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


class Store:
    """An async SQLAlchemy engine with its session factory."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.session = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time, and a write transaction that finds another in progress may fail at
        # once ("database is locked") instead of waiting; writers of this process queue here instead.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._raw_connection: AsyncConnection | None = None
        """The connection `raw_writing` keeps on SQLite, opened at the first write."""

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction, serialised within this process on SQLite."""
        if self._write_lock is None:
            async with self.session() as session, session.begin():
                yield session
            return
        async with self._write_lock, self.session() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def raw_writing(self) -> AsyncIterator[AsyncConnection]:
        """A connection outside any transaction, for a caller that runs its own on the driver's connection;
        serialised with `writing()` within this process on SQLite.

        On SQLite it is one connection kept for these writes (they take turns anyway): a connection checked out of
        the pool per transaction cost a checkout and a return, whose reset is a rollback handed to aiosqlite's thread,
        a second hop besides the transaction's own. One the driver invalidated (a disconnect) is closed, and the
        next write opens another.
        """
        if self._write_lock is None:
            async with self.engine.connect() as connection:
                yield connection
            return
        async with self._write_lock:
            kept = self._raw_connection
            if kept is None or kept.closed:
                kept = self._raw_connection = await self.engine.connect()
            try:
                yield kept
            except BaseException:
                if kept.invalidated:
                    self._raw_connection = None
                    await kept.close()
                raise

    @classmethod
    def open(cls, url: str, *, connect_args: dict[str, Any] | None = None) -> Store:
        """Create the engine for `url` (nothing connects until first use). A PostgreSQL URL's `search_path`
        (`?search_path=isthmus`) puts the store's tables in that schema (`toolpolicy/store_schema.py`)."""
        parsed = make_url(url)
        options: dict[str, Any] = {"connect_args": dict(connect_args or {})}
        schemas = store_schema.search_path(url)
        if schemas is not None:
            parsed = parsed.difference_update_query([store_schema.PARAMETER])
            server_settings = dict(options["connect_args"].get("server_settings") or {})
            options["connect_args"]["server_settings"] = {**server_settings, store_schema.PARAMETER: schemas}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"].setdefault("timeout", 30)
        else:
            options.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        engine = create_async_engine(parsed, **options)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    async def migrate(self) -> None:
        """Apply every pending Alembic migration."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_upgrade)

    async def at_head(self) -> bool:
        """Whether the store is at the newest schema (one query; Alembic stays unloaded)."""
        async with self.engine.connect() as connection:
            return await connection.run_sync(_at_head)

    async def revision(self) -> str | None:
        async with self.engine.connect() as connection:
            return await connection.run_sync(_current_revision)

    async def ping(self) -> None:
        """Raise if the store cannot answer a trivial query."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._write_lock is not None and self._raw_connection is not None:
            async with self._write_lock:  # after the write under way, if any
                kept, self._raw_connection = self._raw_connection, None
                if kept is not None:
                    await kept.close()
        await self.engine.dispose()

    def transaction(self) -> AsyncSession:
        """A session to use as `async with store.transaction() as s, s.begin(): ...`."""
        return self.session()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; WAL lets the CLI write while the gateway serves.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL is still crash-safe for the database; it skips an fsync per commit (audit batches).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
