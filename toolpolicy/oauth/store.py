"""The authorization server's state in the store: signing keys, registered clients, codes, refresh tokens.

Everything a replica needs to continue another replica's flow lives here (a code issued by one is exchanged at
another). Codes and refresh tokens are kept by their SHA-256 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, select, update

from toolpolicy.secrets import hash_secret
from toolpolicy.store.engine import Store
from toolpolicy.store.schema import OAuthClientRow, OAuthCodeRow, OAuthRefreshTokenRow, OAuthSigningKeyRow


@dataclass(frozen=True, slots=True)
class Grant:
    """What a code or a refresh token stands for: one client acting with one virtual key on one resource."""

    client_id: str
    key_id: str
    key_version: str
    resource: str
    scope: str


@dataclass(frozen=True, slots=True)
class PendingCode:
    grant: Grant
    redirect_uri: str
    code_challenge: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    grant: Grant
    family_id: str
    expires_at: datetime
    rotated: bool
    revoked: bool


class OAuthStore:
    """SQL access for `toolpolicy.oauth`; no policy here."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- signing keys ----------------------------------------------------------------------------------------

    async def signing_keys(self) -> list[tuple[str, str, dict[str, Any], datetime]]:
        """Every signing key, newest first: (kid, alg, private JWK, created_at)."""
        query = select(OAuthSigningKeyRow).order_by(OAuthSigningKeyRow.created_at.desc(), OAuthSigningKeyRow.kid)
        async with self.store.session() as session:
            rows = (await session.execute(query)).scalars().all()
            return [(row.kid, row.alg, dict(row.private_jwk), row.created_at) for row in rows]

    async def add_signing_key(self, kid: str, alg: str, private_jwk: dict[str, Any], created_at: datetime) -> None:
        async with self.store.writing() as session:
            session.add(OAuthSigningKeyRow(kid=kid, alg=alg, private_jwk=private_jwk, created_at=created_at))

    async def prune_signing_keys(self, keep: list[str]) -> None:
        """Delete every signing key but these (no token they signed is still valid)."""
        async with self.store.writing() as session:
            await session.execute(delete(OAuthSigningKeyRow).where(OAuthSigningKeyRow.kid.not_in(keep)))

    # -- clients ---------------------------------------------------------------------------------------------

    async def add_client(self, client_id: str, name: str, redirect_uris: list[str], meta: dict[str, Any]) -> None:
        async with self.store.writing() as session:
            session.add(OAuthClientRow(client_id=client_id, client_name=name, redirect_uris=redirect_uris, meta=meta))

    async def client(self, client_id: str) -> dict[str, Any] | None:
        """A registered client's metadata, or None."""
        async with self.store.session() as session:
            row = await session.get(OAuthClientRow, client_id)
            return dict(row.meta) if row is not None else None

    # -- authorization codes ---------------------------------------------------------------------------------

    async def add_code(self, code: str, pending: PendingCode) -> None:
        grant = pending.grant
        row = OAuthCodeRow(
            code_hash=hash_secret(code),
            client_id=grant.client_id,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            key_id=grant.key_id,
            key_version=grant.key_version,
            resource=grant.resource,
            scope=grant.scope,
            expires_at=pending.expires_at,
        )
        async with self.store.writing() as session:
            session.add(row)

    async def take_code(self, code: str, now: datetime) -> PendingCode | None:
        """The code's grant, deleting it so it cannot be used twice (and pruning expired codes)."""
        digest = hash_secret(code)
        async with self.store.writing() as session:
            row = await session.get(OAuthCodeRow, digest)
            taken = _rowcount(await session.execute(delete(OAuthCodeRow).where(OAuthCodeRow.code_hash == digest)))
            await session.execute(delete(OAuthCodeRow).where(OAuthCodeRow.expires_at < now))
            if row is None or taken != 1:
                return None
            grant = Grant(row.client_id, row.key_id, row.key_version, row.resource, row.scope)
            return PendingCode(grant, row.redirect_uri, row.code_challenge, row.expires_at)

    # -- refresh tokens --------------------------------------------------------------------------------------

    async def add_refresh(self, token: str, grant: Grant, family_id: str, expires_at: datetime) -> None:
        row = OAuthRefreshTokenRow(
            token_hash=hash_secret(token),
            family_id=family_id,
            client_id=grant.client_id,
            key_id=grant.key_id,
            key_version=grant.key_version,
            resource=grant.resource,
            scope=grant.scope,
            expires_at=expires_at,
        )
        async with self.store.writing() as session:
            session.add(row)

    async def rotate_refresh(self, token: str, now: datetime) -> RefreshRecord | None:
        """Mark the token rotated and return what it was (`rotated` says whether it already was), or None."""
        async with self.store.writing() as session:
            row = await session.get(OAuthRefreshTokenRow, hash_secret(token), with_for_update=True)
            if row is None:
                return None
            grant = Grant(row.client_id, row.key_id, row.key_version, row.resource, row.scope)
            record = RefreshRecord(
                grant, row.family_id, row.expires_at, row.rotated_at is not None, row.revoked_at is not None
            )
            if row.rotated_at is None:
                row.rotated_at = now
            return record

    async def find_refresh(self, token: str) -> RefreshRecord | None:
        async with self.store.session() as session:
            row = await session.get(OAuthRefreshTokenRow, hash_secret(token))
            if row is None:
                return None
            grant = Grant(row.client_id, row.key_id, row.key_version, row.resource, row.scope)
            return RefreshRecord(
                grant, row.family_id, row.expires_at, row.rotated_at is not None, row.revoked_at is not None
            )

    async def revoke_family(self, family_id: str, now: datetime) -> int:
        """Revoke every refresh token of a family; the number revoked now."""
        query = (
            update(OAuthRefreshTokenRow)
            .where(OAuthRefreshTokenRow.family_id == family_id, OAuthRefreshTokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        async with self.store.writing() as session:
            return _rowcount(await session.execute(query))

    async def family_revoked(self, family_id: str) -> bool:
        query = select(OAuthRefreshTokenRow.token_hash).where(
            OAuthRefreshTokenRow.family_id == family_id, OAuthRefreshTokenRow.revoked_at.is_not(None)
        )
        async with self.store.session() as session:
            return (await session.execute(query.limit(1))).first() is not None


def _rowcount(result: object) -> int:
    """Rows a DELETE or UPDATE touched."""
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0
