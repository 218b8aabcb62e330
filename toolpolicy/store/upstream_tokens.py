"""Upstream OAuth state shared by replicas: each virtual key's token set per server, and dynamically registered
clients. Everything is stored sealed (`toolpolicy.upstream_oauth.cipher`); this module never sees a token in clear
except on its way in or out.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from toolpolicy.store.engine import Store
from toolpolicy.store.schema import UpstreamClientRow, UpstreamTokenRow, utcnow
from toolpolicy.upstream_oauth.cipher import Sealed, TokenCipher
from toolpolicy.upstream_oauth.tokens import TokenSet

__all__ = ["StoredTokens", "UpstreamTokenStore"]


def token_context(key_id: str, server: str) -> str:
    return f"token|{key_id}|{server}"


def client_context(server: str) -> str:
    return f"client|{server}"


class StoredTokens:
    """A token set as read, with the row version a refresh must write over."""

    __slots__ = ("tokens", "version")

    def __init__(self, tokens: TokenSet, version: int) -> None:
        self.tokens = tokens
        self.version = version


class UpstreamTokenStore:
    """`get`, `put` (compare-and-swap on the version) and `delete` of token sets; `client`/`put_client` of
    registrations."""

    def __init__(self, store: Store, cipher: TokenCipher) -> None:
        self.store = store
        self.cipher = cipher

    async def get(self, key_id: str, server: str) -> StoredTokens | None:
        """The key's token set for `server`, or None (none stored, or one that no longer opens with this key)."""
        statement = select(UpstreamTokenRow).where(UpstreamTokenRow.key_id == key_id, UpstreamTokenRow.server == server)
        async with self.store.session() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
        if row is None:
            return None
        try:
            plain = self.cipher.open(row.sealed, token_context(key_id, server))
        except Sealed:
            return None  # sealed under another encryption key: the owner authorizes again
        return StoredTokens(TokenSet.from_json(plain), row.version)

    async def put(self, key_id: str, server: str, tokens: TokenSet, *, over: int | None) -> int | None:
        """Store `tokens`; `over=None` replaces whatever is there (a new authorization), `over=<version>` only that
        version (a refresh). Returns the new version, or None when another writer got there first."""
        sealed = self.cipher.seal(tokens.to_json(), token_context(key_id, server))
        async with self.store.writing() as session:
            if over is not None:
                result = await session.execute(
                    update(UpstreamTokenRow)
                    .where(
                        UpstreamTokenRow.key_id == key_id,
                        UpstreamTokenRow.server == server,
                        UpstreamTokenRow.version == over,
                    )
                    .values(sealed=sealed, version=over + 1, updated_at=utcnow())
                )
                return over + 1 if getattr(result, "rowcount", 0) == 1 else None
            row = await session.get(UpstreamTokenRow, (key_id, server))
            if row is None:
                session.add(UpstreamTokenRow(key_id=key_id, server=server, sealed=sealed, version=1))
                return 1
            row.sealed, row.version, row.updated_at = sealed, row.version + 1, utcnow()
            return row.version

    async def keys(self, server: str, limit: int = 20) -> list[str]:
        """The keys holding a token set for `server`, most recently written first."""
        statement = (
            select(UpstreamTokenRow.key_id)
            .where(UpstreamTokenRow.server == server)
            .order_by(UpstreamTokenRow.updated_at.desc())
            .limit(limit)
        )
        async with self.store.session() as session:
            return list((await session.execute(statement)).scalars())

    async def delete(self, key_id: str, server: str) -> None:
        async with self.store.writing() as session:
            await session.execute(
                delete(UpstreamTokenRow).where(UpstreamTokenRow.key_id == key_id, UpstreamTokenRow.server == server)
            )

    async def client(self, server: str, issuer: str) -> bytes | None:
        """The registration made for `server` at `issuer` (its JSON), or None."""
        async with self.store.session() as session:
            row = await session.get(UpstreamClientRow, server)
        if row is None or row.issuer != issuer:
            return None
        try:
            return self.cipher.open(row.sealed, client_context(server))
        except Sealed:
            return None

    async def put_client(self, server: str, issuer: str, registration: bytes) -> None:
        sealed = self.cipher.seal(registration, client_context(server))
        async with self.store.writing() as session:
            row = await session.get(UpstreamClientRow, server)
            if row is None:
                session.add(UpstreamClientRow(server=server, issuer=issuer, sealed=sealed))
            else:
                row.issuer, row.sealed, row.updated_at = issuer, sealed, utcnow()
