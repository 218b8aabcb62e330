"""Virtual key secrets: generated once, stored only as a hash, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "isk-"


def generate_secret() -> str:
    """A new key secret: `isk-` and 43 URL-safe characters (256 bits of randomness)."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of the secret.

    A fast hash is right here: secrets are 256-bit random values, not passwords, so there is nothing to brute-force,
    and resolution sits on every request's path.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """The part of a secret that may be shown to identify it (`isk-AbCd`)."""
    return secret[: len(PREFIX) + 4]


def same_hash(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored.encode(), presented.encode())
