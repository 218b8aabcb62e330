"""The rate journal: rate-limit usage per counter bucket, kept in the store while its window lasts.

Counters live in Redis (which here keeps nothing on disk) or in the process; when they come back empty, budgets are
rebuilt from the spend ledger, and rate limits (requests and tokens per window, key- and provider-level; MCP tool
calls per key and per server) from this journal, so a restart does not hand every key a fresh window.

Why a journal of its own rather than re-reading the audit log: an audit record is written when a request *finishes*,
stamped with the wall clock, and names only the route finally taken. Seeding from it would miss the requests in
flight at the restart (a streaming call holds its tokens for minutes), count a request in the window it ended in
rather than the one it was admitted in, miss the provider-level usage of attempts that failed over, and lose what
the audit writer dropped under backlog: every one of those under-counts, and a restart must never grant more than
one window's limit. The journal records exactly what the counters record, under the same bucket ids, on the
governor's clock:

- a granted reservation's amounts (requests and tool calls counted, tokens held) and a settlement's correction
  (actual tokens minus the hold; minus the hold on release) are journaled as the counters' answer comes back, so a
  seed taken by this replica includes every request it let through (`toolpolicy.counters.journaled`). The holds of
  requests in flight at a restart count in full, and count again when they settle into the seeded bucket (their
  hold in Redis is gone): a slight over-count, never an under-count;
- entries are summed per bucket as they are recorded, off the request path, and each write upserts one row per
  bucket changed since the last: a request adds to an in-memory sum (no entry object, no writer item); the writer
  holds one item per bucket with a sum waiting (its backlog counts buckets, not requests); rows are pruned once
  their window is over;
- a seed is asked for only when a bucket is missing from a window that began before the counter store started
  keeping data (`Limit.window_start`), so after a restart each live bucket is seeded once, and new windows never
  touch the journal.

Bounds: another replica's entries it has not written yet (at most its flush interval,
`audit.rate_journal_flush_interval`, 0.25 s by default) are not in a seed taken by this replica (the spend ledger
that budgets are rebuilt from has the same bound); and whether a window is new to the counters is judged on the
replicas' clocks, so their skew (milliseconds under NTP) is the margin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import select

from toolpolicy.batching import BatchWriter, Emitted, WriterMark
from toolpolicy.store.engine import Store
from toolpolicy.store.faults import is_record_fault
from toolpolicy.store.raw_write import RawWriter, Transaction, bind_row, bound, processors
from toolpolicy.store.schema import RateJournalRow

PRUNE_EVERY = 60.0
"""Seconds (on the entries' clock) between deletions of rows whose window is over."""
_COLUMNS = ("bucket", "used", "expires_at")
_UPSERT = (
    " ON CONFLICT (bucket) DO UPDATE SET used = rate_journal.used + excluded.used, expires_at = excluded.expires_at"
)


class RateEntry(NamedTuple):
    """A change of one bucket's usage (in a write: the sum of the changes recorded since the last)."""

    bucket: str
    amount: int
    """Positive when usage is taken, negative when a hold is settled lower or released."""
    at: float
    """When, in epoch seconds on the governor's clock."""
    expires_at: float
    """When the bucket's window is over (epoch seconds)."""


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class RateJournal:
    """`record` never waits on the store; `flush` writes what this replica recorded so far."""

    def __init__(
        self, store: Store, *, batch_size: int = 10_000, flush_interval: float = 0.25, max_buffer: int = 100_000
    ) -> None:
        # Each write sums its entries per bucket, so a batch costs about the same however many it holds: the
        # interval, not the size, paces the writes.
        self.store = store
        self.writer = BatchWriter[str](
            self.write_batch,
            name="rate journal",
            batch_size=batch_size,
            flush_interval=flush_interval,
            is_record_fault=is_record_fault,
            max_buffer=max_buffer,
            forget=self._forget,
        )
        """Its items are bucket names: one per bucket whose sum waits in `_amounts` (see `record`)."""
        self._amounts: dict[str, int] = {}
        """Usage recorded and not yet written, by bucket: each has exactly one item in the writer's hands."""
        self._expires: dict[str, float] = {}
        """The latest end of window recorded for each bucket in `_amounts`."""
        self._latest = float("-inf")
        """The latest `at` recorded: what the next write prunes by."""
        self._pruned_at = float("-inf")
        self._raw = RawWriter(store)
        table = RateJournalRow.__table__
        self._processors = processors(table, _COLUMNS, store.engine.dialect)  # type: ignore[arg-type]
        (_, bind_time), *_ = processors(table, ("expires_at",), store.engine.dialect)  # type: ignore[arg-type]
        self._bind_time = bind_time
        self._prune = bound("DELETE FROM rate_journal WHERE expires_at < ?", store.engine.dialect.paramstyle)

    def record(self, bucket: str, amount: int, at: float, expires_at: float) -> None:
        """Add `amount` to the bucket's sum waiting to be written (a few per request: a dict update each)."""
        amounts = self._amounts
        if bucket in amounts:
            amounts[bucket] += amount
            if expires_at > self._expires[bucket]:
                self._expires[bucket] = expires_at
        else:
            amounts[bucket] = amount
            self._expires[bucket] = expires_at
            self.writer.emit(bucket)
        if at > self._latest:
            self._latest = at

    def _forget(self, bucket: str) -> None:
        """A full buffer (the store unreachable for long) dropped the bucket's item: its sum goes with it, as the
        oldest entries did, and the bucket's next record starts a new sum with an item of its own."""
        del self._amounts[bucket], self._expires[bucket]

    def start(self) -> None:
        self.writer.start()

    async def flush(self) -> None:
        await self.writer.flush()

    async def aclose(self) -> None:
        await self.writer.aclose()

    async def write_batch(self, batch: list[Emitted[str]], mark: WriterMark) -> None:
        """Write the sums of the writer's buckets; each leaves `_amounts` once written (or rejected, see below).

        What is recorded while the write is under way is added to the sums and written by the bucket's next item.
        """
        amounts, expires = self._amounts, self._expires
        buckets = {emitted.item for emitted in batch if emitted.item in amounts}  # a bucket is in one item at most
        entries = [RateEntry(bucket, amounts[bucket], self._latest, expires[bucket]) for bucket in buckets]
        try:
            await self.write(entries)
        except Exception as exc:
            # The writer isolates a rejected bucket and drops it (logged): its sum goes with it, as an entry's did.
            if len(batch) == 1 and is_record_fault(exc):
                for bucket in buckets:
                    del amounts[bucket], expires[bucket]
            raise
        for entry in entries:
            left = amounts[entry.bucket] - entry.amount
            if left:  # recorded during the write: the bucket's next item writes it
                amounts[entry.bucket] = left
                self.writer.emit(entry.bucket)
            else:
                del amounts[entry.bucket], expires[entry.bucket]

    async def write(self, entries: list[RateEntry]) -> None:
        if not entries:
            return
        used: dict[str, int] = defaultdict(int)
        expires: dict[str, float] = {}
        for entry in entries:
            used[entry.bucket] += entry.amount
            expires[entry.bucket] = max(expires.get(entry.bucket, entry.expires_at), entry.expires_at)
        # Sorted, so replicas upserting the same buckets lock them in one order and cannot deadlock.
        table = RateJournalRow.__tablename__
        rows = [
            bind_row([bucket, amount, _timestamp(expires[bucket])], self._processors, f"bucket {bucket!r}", table)
            for bucket, amount in sorted(used.items())
            if amount
        ]
        latest = max((entry.at for entry in entries), default=float("-inf"))
        prune_before = None
        if latest >= self._pruned_at + PRUNE_EVERY:
            self._pruned_at = latest
            prune_before = self._bind_time(_timestamp(latest))
        if rows or prune_before is not None:
            # One upsert and the pruning in one call on the driver's connection (`raw_write`).
            await self._raw.run(self._write_rows, rows, prune_before)

    def _write_rows(self, transaction: Transaction, rows: list[tuple[Any, ...]], prune_before: Any) -> None:
        transaction.insert(RateJournalRow.__tablename__, _COLUMNS, rows, _UPSERT)
        if prune_before is not None:
            transaction.execute(self._prune, (prune_before,))

    async def totals(self, buckets: Collection[str]) -> dict[str, int]:
        """Journaled usage of these buckets (absent: none)."""
        statement = select(RateJournalRow.bucket, RateJournalRow.used).where(RateJournalRow.bucket.in_(buckets))
        async with self.store.session() as session:
            return {bucket: int(used) for bucket, used in await session.execute(statement)}
