"""Authorization links for flow `authorization_code`, sealed so that neither the gateway's replicas nor the browser
need to remember anything:

- the **ticket** in `/oauth/upstream/<server>/start?ticket=...`, handed to a key's owner in a tool error: which key,
  which server, until when;
- the OAuth **state** sent to the upstream's authorization server and back to `/oauth/upstream/callback`: the same,
  plus the PKCE verifier (RFC 7636, S256).

Both are AES-GCM sealed (`cipher.py`) under purpose-bound associated data, so a ticket is not a state, nothing is
readable or forgeable without the key, and each carries its own expiry (checked against an injected clock).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from toolpolicy.upstream_oauth.cipher import Sealed, TokenCipher

__all__ = ["LinkError", "Links", "Pending", "Ticket", "pkce_challenge", "pkce_verifier"]


class LinkError(ValueError):
    """A ticket or state that is forged, damaged, for another purpose, or expired."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """Who may authorize which server, until when; `key_name`, `team` and `customer` are for the audit trail."""

    key_id: str
    server: str
    expires_at: float
    key_name: str | None = None
    team: str | None = None
    customer: str | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """An authorization in progress at the upstream's authorization server."""

    ticket: Ticket
    verifier: str = field(repr=False)


def pkce_verifier() -> str:
    """A PKCE code verifier: 64 characters of the unreserved set (RFC 7636 4.1)."""
    return secrets.token_urlsafe(48)


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Links:
    def __init__(self, cipher: TokenCipher, clock: Callable[[], float]) -> None:
        self.cipher = cipher
        self.clock = clock

    def ticket(self, ticket: Ticket) -> str:
        return self.cipher.seal_text(json.dumps(asdict(ticket)).encode(), "ticket")

    def open_ticket(self, text: str) -> Ticket:
        return self._fresh(_ticket(self._open(text, "ticket")))

    def state(self, pending: Pending) -> str:
        payload = {**asdict(pending.ticket), "verifier": pending.verifier}
        return self.cipher.seal_text(json.dumps(payload).encode(), "state")

    def open_state(self, text: str) -> Pending:
        data = self._open(text, "state")
        verifier = data.get("verifier")
        if not isinstance(verifier, str):
            raise LinkError("the state carries no PKCE verifier")
        return Pending(self._fresh(_ticket(data)), verifier)

    def _open(self, text: str, purpose: str) -> dict[str, object]:
        try:
            data = json.loads(self.cipher.open_text(text, purpose))
        except (Sealed, ValueError):
            raise LinkError(f"this {purpose} is not one this gateway issued (or it was altered)") from None
        if not isinstance(data, dict):
            raise LinkError(f"this {purpose} is damaged")
        return data

    def _fresh(self, ticket: Ticket) -> Ticket:
        if self.clock() > ticket.expires_at:
            raise LinkError("this authorization link has expired; call the tool again for a new one")
        return ticket


def _ticket(data: dict[str, object]) -> Ticket:
    try:
        return Ticket(
            key_id=str(data["key_id"]),
            server=str(data["server"]),
            expires_at=float(data["expires_at"]),  # type: ignore[arg-type]
            key_name=_optional(data.get("key_name")),
            team=_optional(data.get("team")),
            customer=_optional(data.get("customer")),
        )
    except (KeyError, TypeError, ValueError):
        raise LinkError("this link is damaged") from None


def _optional(value: object) -> str | None:
    return value if isinstance(value, str) else None
