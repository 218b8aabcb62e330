"""The built-in authorization server's signing keys: kept in the store (every replica signs and verifies with
the same ones), created on first use, rotated when old. The newest key signs; the one before it still verifies,
so tokens signed just before a rotation stay valid for their lifetime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey

from toolpolicy.oauth.store import OAuthStore

VERIFYING_KEYS = 2
"""The newest key and its predecessor."""


def _generate(algorithm: str) -> ECKey | RSAKey:
    key: ECKey | RSAKey = ECKey.generate_key("P-256") if algorithm == "ES256" else RSAKey.generate_key(2048)
    key.ensure_kid()
    return key


def _import(jwk: dict[str, Any]) -> ECKey | RSAKey:
    return ECKey.import_key(jwk) if jwk.get("kty") == "EC" else RSAKey.import_key(jwk)


class SigningKeys:
    def __init__(
        self,
        store: OAuthStore,
        *,
        algorithm: str,
        rotate_after: float,
        reload_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.algorithm = algorithm
        self.rotate_after = rotate_after
        self.reload_interval = reload_interval
        self.clock = clock
        self._keys: list[tuple[ECKey | RSAKey, str, float]] = []  # newest first: key, alg, created (epoch)
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _load(self) -> None:
        rows = await self.store.signing_keys()
        self._keys = [(_import(jwk), alg, created.timestamp()) for _, alg, jwk, created in rows]
        self._loaded_at = self.clock()

    async def _ensure(self) -> None:
        if self._keys and self.clock() - self._loaded_at < self.reload_interval:
            return
        async with self._lock:
            await self._load()
            if not self._keys:
                await self.rotate()

    async def rotate(self) -> str:
        """Add a new signing key (it signs from now on) and drop all but the newest two; its kid."""
        key = _generate(self.algorithm)
        jwk = {**key.as_dict(private=True), "alg": self.algorithm, "use": "sig"}
        await self.store.add_signing_key(key.kid or "", self.algorithm, jwk, datetime.fromtimestamp(self.clock(), UTC))
        await self._load()
        await self.store.prune_signing_keys([k.kid or "" for k, _, _ in self._keys[:VERIFYING_KEYS]])
        self._keys = self._keys[:VERIFYING_KEYS]
        return key.kid or ""

    async def signer(self) -> tuple[ECKey | RSAKey, str]:
        """The key to sign with now (rotating first if it is older than `rotate_after`)."""
        await self._ensure()
        key, alg, created = self._keys[0]
        if self.clock() - created >= self.rotate_after:
            async with self._lock:
                if self.clock() - self._keys[0][2] >= self.rotate_after:
                    await self.rotate()
            key, alg, _ = self._keys[0]
        return key, alg

    async def verifying(self, kid: str | None) -> KeySet:
        """The keys that verify; reloaded from the store first when `kid` is one this replica has not seen."""
        await self._ensure()
        known = {key.kid for key, _, _ in self._keys}
        if kid not in known and self.clock() - self._loaded_at >= 1.0:
            async with self._lock:
                await self._load()
        return KeySet([key for key, _, _ in self._keys[:VERIFYING_KEYS]])

    async def jwks(self) -> dict[str, Any]:
        """The public JWKS (`/oauth/jwks`)."""
        await self._ensure()
        return {
            "keys": [
                {**key.as_dict(private=False), "alg": alg, "use": "sig"} for key, alg, _ in self._keys[:VERIFYING_KEYS]
            ]
        }
