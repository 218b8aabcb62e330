"""AES-256-GCM for what the hub keeps of upstream OAuth at rest: token sets, dynamically registered clients, and the
sealed `state` and link tickets of authorizations in progress.

Each sealed value is `nonce (12 bytes) || ciphertext+tag`, bound by GCM's associated data to what it belongs to
(`<key id>|<server>` for a token set), so a row copied onto another key's does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["CipherKeyError", "Sealed", "TokenCipher"]

KEY_BYTES = 32
NONCE_BYTES = 12


class CipherKeyError(ValueError):
    """The configured encryption key is not 32 bytes in base64 or hex."""


class Sealed(ValueError):
    """A sealed value does not open with this key and associated data (tampered, another key's, or truncated)."""


class TokenCipher:
    """Seal and open bytes with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise CipherKeyError(f"the encryption key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_text(cls, text: str) -> TokenCipher:
        """A key given as 64 hex digits or base64 (standard or URL-safe, padding optional) of 32 bytes."""
        text = text.strip()
        if len(text) == 2 * KEY_BYTES:
            try:
                return cls(bytes.fromhex(text))
            except ValueError:
                pass
        try:
            raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise CipherKeyError(
                "the encryption key is neither base64 nor hex; make one with `openssl rand -base64 32`"
            ) from None
        if len(raw) != KEY_BYTES:
            raise CipherKeyError(
                f"the encryption key decodes to {len(raw)} bytes, not {KEY_BYTES}; "
                "make one with `openssl rand -base64 32`"
            )
        return cls(raw)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        if len(sealed) <= NONCE_BYTES:
            raise Sealed("too short")
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise Sealed("does not open with this key") from None

    def seal_text(self, plaintext: bytes, context: str) -> str:
        """`seal`, as URL-safe base64 without padding (for a URL parameter)."""
        return base64.urlsafe_b64encode(self.seal(plaintext, context)).rstrip(b"=").decode()

    def open_text(self, text: str, context: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise Sealed("not base64") from None
        return self.open(raw, context)
