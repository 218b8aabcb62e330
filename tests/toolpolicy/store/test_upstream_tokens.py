"""Upstream OAuth token sets on SQLite and PostgreSQL: sealed at rest, bound to their key and server, refreshed
over the version they were read at."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from toolpolicy.store import Store
from toolpolicy.store.schema import UpstreamTokenRow
from toolpolicy.store.upstream_tokens import UpstreamTokenStore
from toolpolicy.upstream_oauth import TokenCipher, TokenSet

pytestmark = pytest.mark.anyio
TOKENS = TokenSet("access-secret-123", expires_at=1_000.0, refresh_token="refresh-secret-456", scope="repo")


@pytest.fixture
def store(migrated_store: Store) -> Store:
    return migrated_store


async def test_a_token_set_is_stored_encrypted_and_read_back_whole(store: Store) -> None:
    tokens = UpstreamTokenStore(store, TokenCipher(os.urandom(32)))
    assert await tokens.put("key1", "github", TOKENS, over=None) == 1
    async with store.session() as session:
        raw = (await session.execute(select(UpstreamTokenRow.sealed))).scalar_one()
    assert b"access-secret-123" not in raw and b"refresh-secret-456" not in raw and b"repo" not in raw
    stored = await tokens.get("key1", "github")
    assert stored is not None and stored.tokens == TOKENS and stored.version == 1


async def test_a_sealed_row_opens_only_for_its_key_server_and_encryption_key(store: Store) -> None:
    cipher = TokenCipher(os.urandom(32))
    tokens = UpstreamTokenStore(store, cipher)
    await tokens.put("key1", "github", TOKENS, over=None)
    await tokens.put("key2", "github", TokenSet("other"), over=None)
    async with store.writing() as session:  # key1's sealed row copied onto key2's
        rows = {row.key_id: row for row in (await session.execute(select(UpstreamTokenRow))).scalars()}
        rows["key2"].sealed = rows["key1"].sealed
    assert await tokens.get("key2", "github") is None
    assert await UpstreamTokenStore(store, TokenCipher(os.urandom(32))).get("key1", "github") is None
    assert await tokens.get("key1", "slack") is None


async def test_a_refresh_is_stored_only_over_the_version_it_read(store: Store) -> None:
    tokens = UpstreamTokenStore(store, TokenCipher(os.urandom(32)))
    await tokens.put("key1", "github", TOKENS, over=None)
    assert await tokens.put("key1", "github", TokenSet("first"), over=1) == 2
    assert await tokens.put("key1", "github", TokenSet("second"), over=1) is None  # another replica won
    stored = await tokens.get("key1", "github")
    assert stored is not None and stored.tokens.access_token == "first" and stored.version == 2
    assert await tokens.keys("github") == ["key1"]
    await tokens.delete("key1", "github")
    assert await tokens.get("key1", "github") is None
