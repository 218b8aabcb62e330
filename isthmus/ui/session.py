"""The dashboard's session: a signed, expiring cookie opened with the admin key, and the CSRF token bound to it.

The cookie holds only a random session id and an expiry, signed with HMAC-SHA256 under a secret derived from the
admin key: every replica and worker verifies it without shared state, and changing the admin key ends every session.
The CSRF token is another HMAC of the session id, so it needs no storage either; forms send it as `csrf_token` and
htmx as the `x-csrf-token` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "isthmus_ui"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    expires: int
    """Unix time after which the cookie is refused."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Issues and checks session cookies and CSRF tokens; `clock` returns Unix time (injected by tests)."""

    def __init__(self, admin_key: str, *, ttl: float, clock: Callable[[], float] = time.time) -> None:
        if not admin_key:
            raise ValueError("the dashboard needs an admin key to sign sessions")
        self._secret = hmac.new(admin_key.encode(), b"isthmus-ui-session-v1", hashlib.sha256).digest()
        self.ttl = ttl
        self.clock = clock

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._secret, payload, hashlib.sha256).digest())

    def issue(self) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(secrets.token_urlsafe(18), int(self.clock() + self.ttl))
        payload = json.dumps({"sid": session.sid, "exp": session.expires}, separators=(",", ":")).encode()
        return session, f"{_b64(payload)}.{self._sign(payload)}"

    def open(self, cookie: str | None) -> Session | None:
        """The session a cookie stands for, or None when it is missing, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded, signature = cookie.split(".")
        try:
            payload = _unb64(encoded)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(payload)
            session = Session(str(data["sid"]), int(data["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if self.clock() < session.expires else None

    def csrf_token(self, session: Session) -> str:
        return self._sign(b"csrf:" + session.sid.encode())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))
