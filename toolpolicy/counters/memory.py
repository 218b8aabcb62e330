"""Counters in this process: exact for one replica (the default when no Redis is configured)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from toolpolicy.counters.base import Limit, ReserveOutcome


@dataclass
class _Holds:
    by_request: dict[str, tuple[int, float]] = field(default_factory=dict)
    total: int = 0


class MemoryCounterStore:
    """Every method runs without awaiting, so each is atomic on the event loop."""

    def __init__(self) -> None:
        self._used: dict[str, tuple[int, float | None]] = {}
        self._holds: dict[str, _Holds] = {}
        self._since: float | None = None
        """When this store began keeping counters (its first reservation): windows begun after are complete."""

    def _value(self, key: str, now: float) -> int | None:
        entry = self._used.get(key)
        if entry is None:
            return None
        used, expires = entry
        if expires is not None and expires <= now:
            del self._used[key]
            return None
        return used

    def _sweep(self, hold_key: str, now: float) -> _Holds:
        holds = self._holds.setdefault(hold_key, _Holds())
        for request_id, (amount, deadline) in list(holds.by_request.items()):
            if deadline <= now:
                del holds.by_request[request_id]
                holds.total -= amount
        return holds

    def _measure(self, limit: Limit, now: float, missing: list[str]) -> int:
        assert self._since is not None
        committed = 0
        for key in limit.used_keys:
            value = self._value(key, now)
            if value is None and limit.seeded:
                if limit.window_start is not None and limit.window_start > self._since:
                    self._used[key] = (0, now + limit.ttl if limit.ttl is not None else None)  # new, not lost
                else:
                    missing.append(key)
            committed += value or 0
        return committed + self._sweep(limit.hold_key, now).total

    def _take(self, request_id: str, limit: Limit, now: float, hold_seconds: float) -> None:
        if limit.commit:
            self._add(limit.add_key, limit.amount, limit.ttl, now)
        elif limit.amount:
            holds = self._holds[limit.hold_key]
            held, _ = holds.by_request.get(request_id, (0, 0.0))
            holds.by_request[request_id] = (held + limit.amount, now + hold_seconds)
            holds.total += limit.amount

    async def reserve(
        self, request_id: str, limits: list[Limit], *, now: float, hold_seconds: float, split: int = 0
    ) -> ReserveOutcome:
        missing: list[str] = []
        if self._since is None:
            self._since = now
        usage = [self._measure(limit, now, missing) for limit in limits]
        if missing:
            return ReserveOutcome(False, tuple(usage), missing=tuple(missing))
        last = split if 0 < split < len(limits) else len(limits)
        for first, end in ((0, last), (last, len(limits))):
            if first and first < end:  # the second stage counts what the first one took
                usage[first:end] = [self._measure(limit, now, missing) for limit in limits[first:end]]
            for index in range(first, end):
                if usage[index] + limits[index].amount > limits[index].limit:
                    return ReserveOutcome(False, tuple(usage), failed=index)
            for limit in limits[first:end]:
                self._take(request_id, limit, now, hold_seconds)
        return ReserveOutcome(True, tuple(usage))

    def _add(self, key: str, amount: int, ttl: int | None, now: float) -> None:
        used = self._value(key, now) or 0
        self._used[key] = (used + amount, now + ttl if ttl is not None else None)

    async def settle(self, request_id: str, settlements: Sequence[tuple[Limit, int]], *, now: float) -> None:
        for limit, actual in settlements:
            holds = self._holds.get(limit.hold_key)
            if holds is not None and request_id in holds.by_request:
                amount, _ = holds.by_request.pop(request_id)
                holds.total -= amount
            if actual and (not limit.seeded or limit.add_key in self._used):
                self._add(limit.add_key, actual, limit.ttl, now)

    async def seed(self, key: str, used: int, ttl: int | None, *, now: float) -> None:
        if self._value(key, now) is None:
            self._used[key] = (used, now + ttl if ttl is not None else None)

    async def flush(self) -> None:
        return None  # settlements apply at once

    async def ping(self, *, timeout: float) -> None:
        return None

    async def aclose(self) -> None:
        return None
