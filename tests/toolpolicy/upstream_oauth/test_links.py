"""Sealed tickets and states: opened only by the gateway that made them, for their purpose, before they expire."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from toolpolicy.upstream_oauth import CipherKeyError, LinkError, Links, Pending, Ticket, TokenCipher
from toolpolicy.upstream_oauth.links import pkce_challenge, pkce_verifier


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_ticket_and_a_state_round_trip_and_expire() -> None:
    clock = Clock()
    links = Links(TokenCipher(os.urandom(32)), clock)
    ticket = Ticket("k1", "github", expires_at=1600.0, key_name="alice")
    assert links.open_ticket(links.ticket(ticket)) == ticket
    state = links.state(Pending(ticket, "verifier"))
    assert links.open_state(state) == Pending(ticket, "verifier")
    clock.now = 1601.0
    with pytest.raises(LinkError, match="expired"):
        links.open_ticket(links.ticket(ticket))


def test_a_ticket_is_not_a_state_and_another_gateways_ticket_does_not_open() -> None:
    links = Links(TokenCipher(os.urandom(32)), Clock())
    ticket = links.ticket(Ticket("k1", "github", expires_at=2000.0))
    with pytest.raises(LinkError):
        links.open_state(ticket)
    with pytest.raises(LinkError, match="not one this gateway issued"):
        Links(TokenCipher(os.urandom(32)), Clock()).open_ticket(ticket)
    with pytest.raises(LinkError):
        links.open_ticket("%%%")


def test_pkce_is_s256_of_a_43_to_128_character_verifier() -> None:
    verifier = pkce_verifier()
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert pkce_challenge(verifier) == expected


def test_an_encryption_key_is_32_bytes_of_base64_or_hex() -> None:
    raw = os.urandom(32)
    for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()):
        sealed = TokenCipher.from_text(text).seal(b"x", "ctx")
        assert TokenCipher(raw).open(sealed, "ctx") == b"x"
    with pytest.raises(CipherKeyError, match="16 bytes"):
        TokenCipher.from_text(base64.b64encode(os.urandom(16)).decode())
    with pytest.raises(CipherKeyError, match="neither base64 nor hex"):
        TokenCipher.from_text("not a key!")
