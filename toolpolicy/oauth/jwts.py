"""JWT checks shared by the tokens issued here and those of trusted issuers (signatures by joserfc)."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from toolpolicy.oauth.errors import InvalidToken

FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})


def looks_like_jwt(value: str) -> bool:
    """Three dot-separated parts, the first a base64url JSON object (`{"` encodes as `eyJ`); virtual keys never
    are. Cheap on purpose: it runs before every `/mcp` request's key lookup."""
    return value.startswith("eyJ") and value.count(".") == 2


def _segment(part: str) -> dict[str, Any]:
    decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(decoded, dict):
        raise ValueError("not an object")
    return decoded


def unverified_header(token: str, *, strict: bool = True) -> dict[str, Any]:
    try:
        return _segment(token.split(".", 1)[0])
    except (ValueError, UnicodeDecodeError):
        if strict:
            raise InvalidToken("the bearer token is not a JWT") from None
        return {}


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload before its signature is checked: only to pick the issuer whose keys check it."""
    parts = token.split(".")
    try:
        return _segment(parts[1]) if len(parts) == 3 else {}
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("the bearer token's payload is not JSON") from None


def verify(
    token: str,
    keys: KeySet,
    *,
    algorithms: Collection[str],
    issuer: str,
    audience: str,
    now: float,
    leeway: float,
    typ: str | None = None,
) -> dict[str, Any]:
    """The claims of a token signed by one of `keys` with an allowed algorithm, for `audience`, valid at `now`."""
    header = unverified_header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg in FORBIDDEN_ALGORITHMS or alg not in algorithms:
        raise InvalidToken(f"the token's algorithm {alg!r} is not accepted")
    if typ is not None and str(header.get("typ", "")).lower() != typ:
        raise InvalidToken(f"the token is not of type {typ!r}")
    try:
        claims = jwt.decode(token, keys, algorithms=[alg]).claims
    except JoseError as exc:
        raise InvalidToken(f"the token's signature does not verify ({exc.error})") from None
    except ValueError:
        raise InvalidToken("the token's signing key is unknown") from None
    if claims.get("iss") != issuer:
        raise InvalidToken("the token's issuer does not match")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences and f"{audience}/" not in audiences:
        raise InvalidToken(f"the token is not for this resource (aud must be {audience!r})")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise InvalidToken("the token has no expiry (exp)")
    if now > exp + leeway:
        raise InvalidToken("the token has expired")
    if isinstance(nbf, int | float) and not isinstance(nbf, bool) and now + leeway < nbf:
        raise InvalidToken("the token is not valid yet (nbf)")
    return claims
