"""Shared fixtures: every store test runs on SQLite and on the machine's real PostgreSQL.

With CI=true an unreachable PostgreSQL or Redis fails the run; elsewhere those tests skip and say why.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.toolpolicy.limits_support import RedisServer

POSTGRES_URL = os.environ.get("ISTHMUS_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ISTHMUS_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"

if "FAKETIME" in os.environ:
    # `make test-dates` moves this process's date with libfaketime; the servers the tests start (redis-server,
    # gateway replicas) keep the real clock, as they would beside a gateway whose host clock says month's end.
    os.environ.pop("LD_PRELOAD", None)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, in CI, fail) when a service the test needs is not listening."""
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the real service is required)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class StoreTarget:
    """A store URL plus the connect arguments that isolate one test in it."""

    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return "postgresql" if self.url.startswith("postgresql") else "sqlite"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreTarget]:
    """An empty store: a fresh SQLite file, or a fresh schema in the real PostgreSQL."""
    if request.param == "sqlite":
        yield StoreTarget(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        return
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import asyncpg

    schema = f"test_{uuid.uuid4().hex[:12]}"
    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        # The schema in the URL too: a test that passes only `url` on must not use (and migrate) `public`, which
        # every test run on this server shares.
        yield StoreTarget(f"{POSTGRES_URL}?search_path={schema}", {"server_settings": {"search_path": schema}})
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of the test's own on a free port, which the test may kill and restart."""
    from tests.toolpolicy.limits_support import RedisServer  # it imports this module

    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
