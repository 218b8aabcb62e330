"""An access token set as an authorization server issued it, and what the hub reads of a token response.

`TokenSet.to_json`/`from_json` are what the store keeps (encrypted, `cipher.py`); `repr` never shows a token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["TokenResponseError", "TokenSet", "parse_token_response"]


class TokenResponseError(ValueError):
    """A token endpoint's answer is not a usable token response (RFC 6749 section 5.1)."""


@dataclass(frozen=True, slots=True)
class TokenSet:
    """One access token, when it expires (epoch seconds, or None: not said), and its refresh token if any."""

    access_token: str = field(repr=False)
    expires_at: float | None = None
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None

    def fresh(self, now: float, margin: float) -> bool:
        """Usable for at least `margin` more seconds (a token without an expiry counts as fresh)."""
        return self.expires_at is None or now + margin < self.expires_at

    def renewed(self, answer: TokenSet) -> TokenSet:
        """This set after a refresh: a rotated refresh token replaces the old one, an unrotated one is kept."""
        return replace(
            answer, refresh_token=answer.refresh_token or self.refresh_token, scope=answer.scope or self.scope
        )

    def to_json(self) -> bytes:
        data = {"access_token": self.access_token, "expires_at": self.expires_at}
        if self.refresh_token is not None:
            data["refresh_token"] = self.refresh_token
        if self.scope is not None:
            data["scope"] = self.scope
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TokenSet:
        data = json.loads(raw)
        expires = data.get("expires_at")
        return cls(
            access_token=str(data["access_token"]),
            expires_at=float(expires) if expires is not None else None,
            refresh_token=data.get("refresh_token"),
            scope=data.get("scope"),
        )


def parse_token_response(body: Any, now: float) -> TokenSet:
    """The token set of a successful token response (JSON object already decoded), `expires_in` made absolute."""
    if not isinstance(body, dict):
        raise TokenResponseError("the token response is not a JSON object")
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenResponseError("the token response has no access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenResponseError(f"token_type {token_type!r} is not supported (only Bearer)")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, int | float)):
        raise TokenResponseError("expires_in is not a number")
    refresh = body.get("refresh_token")
    scope = body.get("scope")
    return TokenSet(
        access_token=token,
        expires_at=now + float(expires_in) if expires_in is not None else None,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        scope=scope if isinstance(scope, str) else None,
    )
