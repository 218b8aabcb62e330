"""Bearer token -> Principal for `/mcp`: the token's key, with its client and subject attached.

`McpCredentials` is what the hub resolves with: a virtual key goes to the key resolver unchanged, a JWT to
`TokenResolver`. A verified token is cached for `token_cache_ttl` (the hot path pays one dict lookup), never past
its expiry; the bound key's state is re-read on each miss, so a revoked or rotated key stops its tokens within
that bound.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from toolpolicy.errors import AuthenticationError, GatewayError, PermissionDenied
from toolpolicy.keys import KeyResolver
from toolpolicy.oauth import jwts
from toolpolicy.oauth.audit import Emit, token_event
from toolpolicy.oauth.errors import InvalidToken
from toolpolicy.oauth.external import ExternalIssuers
from toolpolicy.oauth.key_state import KeyStates
from toolpolicy.oauth.settings import OAuthSettings
from toolpolicy.oauth.store import OAuthStore
from toolpolicy.oauth.tokens import TokenSigner
from toolpolicy.types import OAuthIdentity, Principal

MAX_CACHED = 100_000


class CredentialResolver(Protocol):
    """Presented secret -> Principal, raising `AuthenticationError` (or `PermissionDenied`) otherwise."""

    async def resolve(self, secret: str | None) -> Principal: ...


class TokenResolver:
    def __init__(
        self,
        settings: OAuthSettings,
        signer: TokenSigner,
        external: ExternalIssuers,
        key_states: KeyStates,
        store: OAuthStore,
        emit: Emit,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.external = external
        self.key_states = key_states
        self.store = store
        self.emit = emit
        self.clock = clock
        self.monotonic = monotonic
        self._cache: OrderedDict[str, tuple[float, float, Principal]] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()  # external tokens already audited as accepted
        self._families: dict[str, tuple[float, bool]] = {}

    def invalidate(self) -> None:
        self._cache.clear()
        self._families.clear()
        self.key_states.invalidate()

    async def resolve(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > self.monotonic() and cached[1] > self.clock():
            return cached[2]
        issuer = jwts.unverified_claims(token).get("iss")
        if issuer == self.settings.issuer:
            principal, exp = await self._builtin(token)
        elif self.external.trusts(issuer):
            principal, exp = await self._external(token, str(issuer), digest)
        else:
            raise InvalidToken("the token's issuer is not trusted here")
        self._cache[digest] = (self.monotonic() + self.settings.token_cache_ttl, exp, principal)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return principal

    async def _family_revoked(self, family: str) -> bool:
        cached = self._families.get(family)
        if cached is not None and cached[0] > self.monotonic():
            return cached[1]
        revoked = await self.store.family_revoked(family)
        if len(self._families) > MAX_CACHED:
            self._families.clear()
        self._families[family] = (self.monotonic() + self.settings.token_cache_ttl, revoked)
        return revoked

    async def _builtin(self, token: str) -> tuple[Principal, float]:
        claims = await self.signer.verify_access_token(token, self.settings.resource)
        try:
            if await self._family_revoked(claims["fam"]):
                raise InvalidToken("the token has been revoked")
            principal = await self.key_states.current(key_id=claims["key"], version=claims["kv"])
        except AuthenticationError as exc:
            token_event(
                self.emit,
                "denied",
                client_id=claims["client_id"],
                subject=claims["sub"],
                issuer=self.settings.issuer,
                reason=exc.reason,
                status=401,
                stage="access_token",
            )
            raise InvalidToken(f"the access token is no longer valid: {exc.message}") from None
        identity = OAuthIdentity(claims["client_id"], claims["sub"], self.settings.issuer)
        return dataclasses.replace(principal, oauth=identity), float(claims["exp"])

    async def _external(self, token: str, issuer: str, digest: str) -> tuple[Principal, float]:
        claims: dict[str, Any] = {}
        try:
            trusted, claims, key_name = await self.external.verify(token, issuer)
            principal = await self.key_states.current(name=key_name)
        except GatewayError as exc:
            token_event(
                self.emit,
                "external_refused",
                subject=_str(claims.get("sub")),
                issuer=issuer,
                client_id=_client(claims),
                reason=exc.reason,
                status=exc.status,
            )
            if isinstance(exc, AuthenticationError | PermissionDenied):
                if isinstance(exc, AuthenticationError) and not isinstance(exc, InvalidToken):
                    raise InvalidToken(f"the token maps to a key that cannot be used: {exc.message}") from None
                raise
            raise
        subject = _str(claims.get("sub")) or ""
        identity = OAuthIdentity(_client(claims) or "", subject, trusted.issuer)
        principal = dataclasses.replace(principal, oauth=identity)
        if digest not in self._seen:
            self._seen[digest] = None
            while len(self._seen) > MAX_CACHED:
                self._seen.popitem(last=False)
            token_event(
                self.emit,
                "external_accepted",
                principal=principal,
                subject=subject,
                issuer=issuer,
                client_id=identity.client_id or None,
                claim=trusted.keys_by_claim.claim,
            )
        return principal, float(claims["exp"]) + trusted.leeway


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _client(claims: dict[str, Any]) -> str | None:
    return _str(claims.get("client_id")) or _str(claims.get("azp"))


class McpCredentials:
    """Virtual keys as before; JWTs through the token resolver (the hub is handed this in place of the keys)."""

    def __init__(self, keys: KeyResolver, tokens: TokenResolver) -> None:
        self.keys = keys
        self.tokens = tokens

    async def resolve(self, secret: str | None) -> Principal:
        if secret and jwts.looks_like_jwt(secret):
            return await self.tokens.resolve(secret)
        return await self.keys.resolve(secret)

    def invalidate(self) -> None:
        self.keys.invalidate()
        self.tokens.invalidate()
