"""Fixtures shared by the governance core's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import StoreTarget
from toolpolicy.store import Store
from toolpolicy.store.audit_log import AuditLog


@pytest.fixture
async def audit_log(store_target: StoreTarget) -> AsyncIterator[AuditLog]:
    store = Store.open(store_target.url, connect_args=store_target.connect_args)
    await store.migrate()
    try:
        yield AuditLog(store)
    finally:
        await store.close()
