"""Fixtures shared by the governance core's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import StoreTarget
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
