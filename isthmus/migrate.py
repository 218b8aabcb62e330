"""Migrating the store in a short-lived child process before serving.

Alembic, with Mako, Pygments and the migration scripts behind it, adds about 15 MiB to a process that migrates,
and keeps it: its modules stay referenced, and dropping them frees nothing. So `isthmus serve` brings a store that
is behind to the newest schema in a child (`python -m isthmus.migrate`, given the store's URL on its stdin, so a
password never shows in the process list), and the serving process's own `Store.migrate()` then finds the store at
its head with one query and never imports Alembic. A store in memory exists only in the process that uses it: that
process migrates it itself, as before.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from sqlalchemy.engine import make_url

from toolpolicy.errors import GatewayError
from toolpolicy.store import Store


def in_memory(url: str) -> bool:
    """Whether the store at `url` is an SQLite database in memory (no file another process could open)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:") or parsed.query.get("mode") == "memory"


async def _at_head(url: str) -> bool:
    store = Store.open(url)
    try:
        return await store.at_head()
    finally:
        await store.close()


def migrate_apart(url: str) -> None:
    """Migrate the store at `url` in a child process, unless it is already at its head or lives in memory; a
    failed migration raises GatewayError after the child's own report (on stderr)."""
    if in_memory(url) or asyncio.run(_at_head(url)):
        return
    # The child imports what this process does (a checkout put on sys.path by hand included).
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "isthmus.migrate"]
    child = subprocess.run(command, input=url, text=True, env=environment, check=False)
    if child.returncode != 0:
        raise GatewayError(f"migrating the store failed (the migration exited with code {child.returncode})")


async def _migrate(url: str) -> None:
    store = Store.open(url)
    try:
        await store.migrate()
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(_migrate(sys.stdin.read()))
