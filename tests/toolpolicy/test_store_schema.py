"""A PostgreSQL store URL's `?search_path=`: checked at the configuration's edge, and where the tables go."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from tests.conftest import POSTGRES_URL, require_service
from toolpolicy.settings import GatewaySettings
from toolpolicy.store import Store
from toolpolicy.store_schema import search_path


def test_the_schemas_are_read_from_the_url() -> None:
    assert search_path("postgresql+asyncpg://u:p@db:5432/isthmus?ssl=require&search_path=gateway,public") == (
        "gateway,public"
    )
    assert search_path("postgresql+asyncpg://u@db/isthmus") is None
    assert search_path("postgresql+asyncpg://u@db/isthmus?search_path=") is None  # an empty one names none
    assert search_path("sqlite+aiosqlite:///./isthmus.db") is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql+asyncpg://u@db/i?search_path=Gateway", "must be comma-separated schema names"),
        ("postgresql+asyncpg://u@db/i?search_path=a;drop", "must be comma-separated schema names"),
        ("postgresql+asyncpg://u@db/i?search_path=1abc", "must be comma-separated schema names"),
        ("postgresql+asyncpg://u@db/i?search_path=a&search_path=b", "given more than once"),
        ("sqlite+aiosqlite:///./x.db?search_path=a", "applies only to a postgresql"),
    ],
)
def test_a_bad_search_path_is_refused_by_the_configuration_naming_it(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as raised:
        GatewaySettings.model_validate({"store": url})
    assert raised.value.errors()[0]["loc"] == ("store",)


@pytest.mark.postgres
@pytest.mark.anyio
async def test_the_store_migrates_and_writes_into_the_schema_the_url_names() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    schema = f"sp_{uuid.uuid4().hex[:12]}"
    admin = Store.open(POSTGRES_URL)
    try:
        async with admin.engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        store = Store.open(f"{POSTGRES_URL}?search_path={schema}")
        try:
            await store.migrate()
        finally:
            await store.close()
        async with admin.engine.connect() as connection:
            tables = {
                row[0]
                for row in await connection.execute(
                    text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"),
                    {"schema": schema},
                )
            }
        assert {"alembic_version", "spend_ledger", "audit_events"} <= tables
    finally:
        async with admin.engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.close()
