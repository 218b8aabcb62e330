"""Resolving a presented secret to a Principal, with an in-memory cache.

The cache is what keeps the store off every request's path. Its TTL bounds how late another replica sees a
revocation; the replica that makes a change calls `invalidate()` and sees it at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from toolpolicy.errors import ExpiredKey, MissingKey, RevokedKey, UnknownKey
from toolpolicy.globs import GlobSet
from toolpolicy.secrets import hash_secret, same_hash
from toolpolicy.types import AgentPolicy, Principal

KeyLookup = Callable[[str], Awaitable[dict[str, Any] | None]]
"""Find a key record by the hash of its secret (`Directory.find_key`)."""


class _Entry:
    __slots__ = ("fresh_until", "principal", "revoked")

    def __init__(self, fresh_until: float, principal: Principal | None, revoked: bool) -> None:
        self.fresh_until = fresh_until
        self.principal = principal
        self.revoked = revoked


def principal_from_record(record: dict[str, Any]) -> Principal:
    expires_at = record.get("expires_at")
    return Principal(
        key_id=record["id"],
        key_name=record["name"],
        team=record.get("team"),
        customer=record.get("customer"),
        team_id=record.get("team_id"),
        customer_id=record.get("customer_id"),
        models=GlobSet.of(record.get("models") or ()),
        mcp={server: GlobSet.of(tools) for server, tools in (record.get("mcp") or {}).items()},
        expires_at=datetime.fromisoformat(expires_at) if isinstance(expires_at, str) else expires_at,
        code_mode=record.get("code_mode"),
        limits={
            "budgets": record.get("budgets") or [],
            "provider_budgets": record.get("provider_budgets") or {},
            "rate_limit": record.get("rate_limit"),
            "provider_rate_limits": record.get("provider_rate_limits") or {},
            "mcp_rate_limit": record.get("mcp_rate_limit"),
            "team_budgets": record.get("team_budgets") or [],
            "customer_budgets": record.get("customer_budgets") or [],
        },
        metadata=record.get("metadata") or {},
        agent=_agent(record.get("agent")),
        guardrails=tuple(record.get("guardrails") or ()),
        skip_guardrails=tuple(record.get("skip_guardrails") or ()),
        cache=_cache(record),
    )


def _cache(record: dict[str, Any]) -> bool | dict[str, Any] | None:
    """The `cache` setting that applies to the key: its own, else its team's, else its customer's (null: none says
    anything, the gateway's `cache:` decides)."""
    for field in ("cache", "team_cache", "customer_cache"):
        value = record.get(field)
        if value is not None:
            return value  # type: ignore[no-any-return]
    return None


def _agent(value: Any) -> AgentPolicy | None:
    """The stored `agent` block (validated when it was written), or None."""
    if not isinstance(value, dict):
        return None
    return AgentPolicy(
        tools=GlobSet.of(value.get("tools") or ()),
        max_steps=int(value.get("max_steps", 8)),
        parallel=bool(value.get("parallel", True)),
    )


class KeyResolver:
    """Secret -> Principal, raising a typed AuthenticationError for a missing, unknown, revoked or expired key."""

    def __init__(
        self,
        lookup: KeyLookup,
        *,
        ttl: float = 5.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._now = now
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[_Entry]] = {}

    def invalidate(self) -> None:
        """Forget every cached resolution (called by this replica after any change to keys, teams or customers)."""
        self._cache.clear()

    async def resolve(self, secret: str | None) -> Principal:
        if not secret:
            raise MissingKey("no API key given: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        digest = hash_secret(secret)
        entry = self._cache.get(digest)
        if entry is None or entry.fresh_until <= self._clock():
            entry = await self._load(digest)
        if entry.principal is None:
            raise UnknownKey("the API key is not valid")
        if entry.revoked:
            raise RevokedKey(f"the API key {entry.principal.key_name!r} has been revoked")
        expires_at = entry.principal.expires_at
        if expires_at is not None and expires_at <= self._now():
            raise ExpiredKey(f"the API key {entry.principal.key_name!r} expired at {expires_at.isoformat()}")
        return entry.principal

    async def _load(self, digest: str) -> _Entry:
        # Concurrent misses for one key share a single store query.
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            record = await self._lookup(digest)
            if record is not None and not same_hash(record["key_hash"], digest):
                record = None
            principal = principal_from_record(record) if record is not None else None
            revoked = record is not None and not record.get("active", True)
            entry = _Entry(self._clock() + self._ttl, principal, revoked)
            self._cache[digest] = entry
            self._cache.move_to_end(digest)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here so an unawaited future does not warn
            raise
        finally:
            del self._inflight[digest]
