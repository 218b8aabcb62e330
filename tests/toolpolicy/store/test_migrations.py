"""The migrations build exactly the schema the models declare (tables, columns, indexes, constraints), on SQLite and
PostgreSQL: a column or index added to `schema.py` without its migration, or the other way round, fails here."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.conftest import StoreTarget
from toolpolicy.store.engine import HEAD_REVISION, Store
from toolpolicy.store.schema import Base

pytestmark = pytest.mark.anyio


def differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return list(compare_metadata(context, Base.metadata))


async def test_the_migrated_store_is_what_the_models_declare(store_target: StoreTarget) -> None:
    store = Store.open(store_target.url, connect_args=store_target.connect_args)
    try:
        await store.migrate()
        assert await store.revision() == HEAD_REVISION
        async with store.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await store.close()
