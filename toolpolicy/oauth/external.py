"""Resource-server mode: JWTs of trusted issuers, checked against their JWKS and mapped to a virtual key.

The JWKS is fetched by an injected function (HTTP lives in `isthmus.oauth`), cached, and fetched again when a
token names a `kid` it does not hold, at most once per `jwks_refresh_interval` per issuer (a flood of made-up
`kid`s cannot turn into a flood of fetches).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from toolpolicy.oauth import jwts
from toolpolicy.oauth.errors import InvalidToken, NoKeyForToken
from toolpolicy.oauth.settings import KeysByClaim, TrustedIssuer

logger = logging.getLogger(__name__)

FetchJwks = Callable[[str], Awaitable[dict[str, Any]]]
"""Fetch a JWKS document by URL (raises on failure)."""


def claim_values(claims: dict[str, Any], path: str) -> list[str]:
    """The claim's values in order: a string is one value, a list of strings several; dotted paths nest."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def mapped_key(claims: dict[str, Any], mapping: KeysByClaim) -> str | None:
    """The key name of the first claim value found in the map."""
    return next((mapping.map[v] for v in claim_values(claims, mapping.claim) if v in mapping.map), None)


class _Jwks:
    def __init__(self) -> None:
        self.keys: KeySet | None = None
        self.fetched_at = float("-inf")
        self.lock = asyncio.Lock()


class ExternalIssuers:
    def __init__(
        self,
        issuers: list[TrustedIssuer],
        fetch: FetchJwks,
        *,
        refresh_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuers = {issuer.issuer: issuer for issuer in issuers}
        self.fetch = fetch
        self.refresh_interval = refresh_interval
        self.clock = clock
        self._jwks = {issuer.issuer: _Jwks() for issuer in issuers}

    def trusts(self, issuer: object) -> bool:
        return isinstance(issuer, str) and issuer in self.issuers

    async def _keys(self, trusted: TrustedIssuer, kid: str | None) -> KeySet:
        cache = self._jwks[trusted.issuer]
        known = cache.keys is not None and (kid is None or any(k.kid == kid for k in cache.keys.keys))
        if known:
            assert cache.keys is not None
            return cache.keys
        async with cache.lock:
            fresh = cache.keys is not None and any(k.kid == kid for k in cache.keys.keys)
            due = self.clock() - cache.fetched_at >= self.refresh_interval or cache.keys is None
            if not fresh and due:
                cache.fetched_at = self.clock()
                try:
                    document = await self.fetch(trusted.jwks_uri)
                    usable = [k for k in document.get("keys", []) if isinstance(k, dict) and k.get("kty") != "oct"]
                    cache.keys = KeySet.import_key_set({"keys": usable})
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    logger.warning("JWKS of %s is unusable: %s", trusted.issuer, exc)
                except Exception as exc:  # the fetcher's own errors (network, status)
                    logger.warning("JWKS of %s could not be fetched: %s", trusted.issuer, exc)
        if cache.keys is None:
            raise InvalidToken(f"the signing keys of {trusted.issuer} are unavailable")
        return cache.keys

    async def verify(self, token: str, issuer: str) -> tuple[TrustedIssuer, dict[str, Any], str]:
        """The issuer's settings, the token's claims, and the name of the key its claims map to."""
        trusted = self.issuers[issuer]
        kid = jwts.unverified_header(token).get("kid")
        keys = await self._keys(trusted, kid if isinstance(kid, str) else None)
        claims = jwts.verify(
            token,
            keys,
            algorithms=trusted.algorithms,
            issuer=trusted.issuer,
            audience=trusted.audience.rstrip("/"),
            now=self.clock(),
            leeway=trusted.leeway,
        )
        key_name = mapped_key(claims, trusted.keys_by_claim)
        if key_name is None:
            raise NoKeyForToken(
                f"the token's {trusted.keys_by_claim.claim!r} claim matches no entry of keys_by_claim for "
                f"{trusted.issuer}; ask an administrator to map it to a virtual key"
            )
        return trusted, claims, key_name
