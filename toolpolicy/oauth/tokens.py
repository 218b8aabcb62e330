"""Access tokens of the built-in authorization server: JWTs (RFC 9068, `typ: at+jwt`) bound to one virtual key.

Claims: `iss`, `aud` (the resource), `sub`, `client_id`, `scope`, `iat`/`nbf`/`exp`, `jti`, and the binding:
`key` (the key's id), `kv` (the key's version, changed by rotation) and `fam` (the refresh-token family, so
revoking the family revokes its access tokens). The consent page's signed state uses the same keys with its own
`typ`, so neither can stand in for the other.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from joserfc import jwt

from toolpolicy.oauth import jwts
from toolpolicy.oauth.errors import InvalidToken
from toolpolicy.oauth.signing import SigningKeys
from toolpolicy.oauth.store import Grant

ACCESS_TYP = "at+jwt"
CONSENT_TYP = "isthmus-consent+jwt"


class TokenSigner:
    def __init__(self, keys: SigningKeys, issuer: str, *, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.issuer = issuer
        self.clock = clock

    async def _sign(self, claims: dict[str, Any], typ: str) -> str:
        key, alg = await self.keys.signer()
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": typ}, claims, key, algorithms=[alg])

    async def access_token(self, grant: Grant, *, subject: str, family_id: str, ttl: int) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.issuer,
            "aud": grant.resource,
            "sub": subject,
            "client_id": grant.client_id,
            "scope": grant.scope,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
            "key": grant.key_id,
            "kv": grant.key_version,
            "fam": family_id,
        }
        return await self._sign(claims, ACCESS_TYP)

    async def verify_access_token(self, token: str, resource: str) -> dict[str, Any]:
        kid = jwts.unverified_header(token).get("kid")
        keyset = await self.keys.verifying(kid if isinstance(kid, str) else None)
        claims = jwts.verify(
            token,
            keyset,
            algorithms=[self.keys.algorithm, "ES256", "RS256"],
            issuer=self.issuer,
            audience=resource,
            now=self.clock(),
            leeway=0,
            typ=ACCESS_TYP,
        )
        for name in ("key", "kv", "fam", "client_id", "sub"):
            if not isinstance(claims.get(name), str):
                raise InvalidToken(f"the token lacks its {name!r} claim")
        return claims

    async def consent_state(self, params: dict[str, str], ttl: int = 900) -> str:
        """The authorization request, signed, for the consent form to carry back (CSRF-safe, replica-safe)."""
        now = int(self.clock())
        claims = {"iss": self.issuer, "aud": f"{self.issuer}/oauth/authorize", "iat": now, "exp": now + ttl}
        return await self._sign({**claims, "req": params}, CONSENT_TYP)

    async def open_consent_state(self, state: str) -> dict[str, str]:
        kid = jwts.unverified_header(state).get("kid")
        keyset = await self.keys.verifying(kid if isinstance(kid, str) else None)
        claims = jwts.verify(
            state,
            keyset,
            algorithms=["ES256", "RS256"],
            issuer=self.issuer,
            audience=f"{self.issuer}/oauth/authorize",
            now=self.clock(),
            leeway=0,
            typ=CONSENT_TYP,
        )
        request = claims.get("req")
        if not isinstance(request, dict):
            raise InvalidToken("the consent form's state is malformed")
        return {str(k): str(v) for k, v in request.items()}
