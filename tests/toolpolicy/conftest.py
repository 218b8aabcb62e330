"""Fixtures shared by the governance core's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import REDIS_URL, StoreTarget, require_service
from toolpolicy.store import Store
from toolpolicy.store.audit_log import AuditLog


@pytest.fixture
async def migrated_store(store_target: StoreTarget) -> AsyncIterator[Store]:
    """The empty store of `store_target`, migrated to the head revision."""
    store = Store.open(store_target.url, connect_args=store_target.connect_args)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def audit_log(migrated_store: Store) -> AuditLog:
    return AuditLog(migrated_store)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    """Each test twice: counters in process (None), then in the shared Redis (its URL)."""
    if request.param == "memory":
        return None
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL
