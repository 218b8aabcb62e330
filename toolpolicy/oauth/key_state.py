"""The current state of the virtual key a token is bound to, looked up by id or name and cached briefly.

A token names its key and the key's version (a digest of its secret's hash): a revoked, expired or rotated key
(rotation changes the version) refuses every token bound to it, within `ttl` on other replicas.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from toolpolicy.errors import ExpiredKey, RevokedKey
from toolpolicy.keys import principal_from_record
from toolpolicy.oauth.errors import InvalidToken
from toolpolicy.secrets import hash_secret
from toolpolicy.types import Principal

KeyRecordLookup = Callable[[str], Awaitable[dict[str, Any] | None]]


def key_version(key_hash: str) -> str:
    """A short digest of the key's secret hash: it changes when the key is rotated."""
    return hash_secret(f"oauth-key-version:{key_hash}")[:32]


@dataclass(frozen=True, slots=True)
class KeyState:
    principal: Principal
    version: str
    active: bool


class KeyStates:
    def __init__(
        self,
        by_id: KeyRecordLookup,
        by_name: KeyRecordLookup,
        *,
        ttl: float = 5.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lookups = {"id": by_id, "name": by_name}
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.now = now
        self._cache: OrderedDict[tuple[str, str], tuple[float, KeyState | None]] = OrderedDict()

    def invalidate(self) -> None:
        self._cache.clear()

    async def _get(self, field: str, value: str) -> KeyState | None:
        cached = self._cache.get((field, value))
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        record = await self._lookups[field](value)
        state = (
            KeyState(principal_from_record(record), key_version(record["key_hash"]), bool(record.get("active", True)))
            if record is not None
            else None
        )
        self._cache[(field, value)] = (self.clock() + self.ttl, state)
        self._cache.move_to_end((field, value))
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return state

    async def current(
        self, *, key_id: str | None = None, name: str | None = None, version: str | None = None
    ) -> Principal:
        """The key's principal if it is active, unexpired and (given `version`) not rotated since."""
        state = await self._get("id", key_id) if key_id is not None else await self._get("name", name or "")
        if state is None:
            raise InvalidToken("the virtual key this token is bound to no longer exists")
        principal = state.principal
        if not state.active:
            raise RevokedKey(f"the API key {principal.key_name!r} has been revoked")
        if principal.expires_at is not None and principal.expires_at <= self.now():
            raise ExpiredKey(f"the API key {principal.key_name!r} expired at {principal.expires_at.isoformat()}")
        if version is not None and version != state.version:
            raise InvalidToken(f"the API key {principal.key_name!r} was rotated; sign in again")
        return principal

    async def version_of(self, key_id: str) -> str:
        state = await self._get("id", key_id)
        if state is None:
            raise InvalidToken("the virtual key no longer exists")
        return state.version
