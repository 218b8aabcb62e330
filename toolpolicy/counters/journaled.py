"""A counter store that also writes rate-limit usage to the rate journal, and seeding rate limits back from it.

Each change is journaled once the counters have applied it (a reservation only when it was granted), in the same
step that hands the counters' answer back, so a seed taken by this replica includes every request it let through.
Journaling before asking would over-count every reservation in flight when a seed is taken (a burst right after a
restart), and buy nothing: such a reservation runs against the seeded counters and is counted there, or fails and
is not served. (One that ran on the Redis that was lost had its answer on the wire at the restart, microseconds
before a seed that takes several round trips.)
"""

from __future__ import annotations

from collections.abc import Sequence

from toolpolicy.counters.base import CounterStore, Limit, ReserveOutcome
from toolpolicy.store.rate_journal import RateJournal

UNBOUNDED_TTL = 366 * 86400
"""How long a journaled bucket without a TTL is kept (rate limits always have one): an entry's `expires_at` is its
bucket's TTL from now, when it may be pruned."""


class JournaledCounterStore:
    def __init__(self, inner: CounterStore, journal: RateJournal) -> None:
        self.inner = inner
        self.journal = journal

    async def reserve(
        self, request_id: str, limits: list[Limit], *, now: float, hold_seconds: float, split: int = 0
    ) -> ReserveOutcome:
        outcome = await self.inner.reserve(request_id, limits, now=now, hold_seconds=hold_seconds, split=split)
        if outcome.ok:
            taken = limits
        elif 0 < split <= (outcome.failed if outcome.failed is not None else -1):
            taken = limits[:split]  # the first stage was granted, the second was not
        else:
            return outcome
        record = self.journal.record
        for limit in taken:
            if limit.journaled and limit.amount:
                ttl = limit.ttl
                record(limit.add_key, limit.amount, now, now + (ttl if ttl is not None else UNBOUNDED_TTL))
        return outcome

    async def settle(self, request_id: str, settlements: Sequence[tuple[Limit, int]], *, now: float) -> None:
        try:
            await self.inner.settle(request_id, settlements, now=now)
        finally:
            # Also when the counters failed: their hold expires on its own, and the usage is what it is.
            for limit, actual in settlements:
                # Counted amounts (requests, tool calls) stay; held ones (tokens) become the actual usage.
                if limit.journaled and not limit.commit and actual != limit.amount:
                    ttl = limit.ttl
                    expires_at = now + (ttl if ttl is not None else UNBOUNDED_TTL)
                    self.journal.record(limit.add_key, actual - limit.amount, now, expires_at)

    async def seed(self, key: str, used: int, ttl: int | None, *, now: float) -> None:
        await self.inner.seed(key, used, ttl, now=now)

    async def flush(self) -> None:
        await self.inner.flush()

    async def ping(self, *, timeout: float) -> None:
        await self.inner.ping(timeout=timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def seed_rate_buckets(
    store: CounterStore, journal: RateJournal | None, buckets: dict[str, int | None], *, now: float
) -> None:
    """Seed missing rate-limit buckets (bucket -> TTL) from the journal, after writing this replica's entries.

    Without a journal they start empty, as counters did before rate limits were journaled.
    """
    totals: dict[str, int] = {}
    if journal is not None:
        await journal.flush()
        totals = await journal.totals(list(buckets))
    for bucket, ttl in buckets.items():
        await store.seed(bucket, max(0, totals.get(bucket, 0)), ttl, now=now)
