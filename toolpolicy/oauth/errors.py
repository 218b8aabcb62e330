"""Errors of the OAuth layer.

GatewayError
├── AuthenticationError
│   └── InvalidToken        401   a bearer token that is malformed, expired, for another audience, badly signed,
│                                 or bound to a key that was revoked or rotated since
└── PermissionDenied
    └── NoKeyForToken       403   a valid external token whose claims map to no virtual key
OAuthError                        an RFC 6749 error (`error`, `error_description`) at the authorization server's
                                  endpoints, with the HTTP status to answer it with
"""

from __future__ import annotations

from toolpolicy.errors import AuthenticationError, PermissionDenied


class InvalidToken(AuthenticationError):
    code = "invalid_token"


class NoKeyForToken(PermissionDenied):
    code = "no_key_for_token"


class OAuthError(Exception):
    """An OAuth protocol error: `error` is the RFC 6749 / 7591 / 7009 code."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def as_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
