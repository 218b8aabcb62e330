"""Folding audit records into hourly totals, and reading percentiles back from a latency histogram."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from toolpolicy.audit import AuditRecord

LATENCY_BOUNDS_MS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)
"""Upper bounds (ms) of the histogram's buckets; one more bucket holds everything slower than the last bound."""
HISTOGRAM_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
_HOUR = timedelta(hours=1)
CACHE_HITS = frozenset({"hit", "semantic-hit"})
"""`details["cache"]` values of a request answered from the response cache."""


BY_KEY, BY_TARGET, ALL = 1, 2, 3
"""Grains of a rollup row: per key (any target), per target (any key), everything. Each record is added to one row
of each grain, so a read scans only the rows of the grain it needs: the overview's series reads one row per hour and
kind, its top keys one per hour, kind and key. The cross product (per key and target) is not kept: it would cost a
row per distinct pair in every batch, and no page reads it."""


@dataclass(frozen=True, slots=True, order=True)
class RollupGroup:
    """What one rollup row counts: an hour, a record kind, a grain, a key and a target (model or `server/tool`).

    `key_name` is `""` for requests no key was resolved for, and in rows of the BY_TARGET and ALL grains; `target`
    is `""` in rows of the BY_KEY and ALL grains.
    """

    bucket: datetime
    kind: str
    grain: int
    key_name: str
    target: str


@dataclass(slots=True)
class Totals:
    """Sums over the records of one group (or of many groups added together)."""

    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BUCKETS)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)
    cache_hits: int = 0
    guardrail_hits: int = 0

    def add(self, record: AuditRecord) -> None:
        self.requests += 1
        if record.status >= 400:
            self.errors += 1
        latency = max(0.0, float(record.latency_ms))
        self.latency_sum_ms += latency
        self.histogram[latency_bucket(latency)] += 1
        self.tokens_in += record.tokens_in or 0
        self.tokens_out += record.tokens_out or 0
        if record.cost_usd is not None and record.cost_usd.is_finite():
            self.cost_usd += record.cost_usd
        details = record.details
        if details.get("cache") in CACHE_HITS:
            self.cache_hits += 1
        if record.kind == "guardrail":
            hits = details.get("hits")
            self.guardrail_hits += hits if isinstance(hits, int) and hits > 0 else 1

    def merge(self, other: Totals) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latency_sum_ms += other.latency_sum_ms
        self.histogram = [mine + theirs for mine, theirs in zip(self.histogram, other.histogram, strict=True)]
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.cost_usd += other.cost_usd
        self.cache_hits += other.cache_hits
        self.guardrail_hits += other.guardrail_hits

    def percentile(self, q: float) -> float | None:
        return percentile(self.histogram, q)


def latency_bucket(latency_ms: float) -> int:
    """The index of the histogram bucket a latency falls in (a latency equal to a bound belongs to that bound)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def hour_of(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


Pairs = dict[tuple[datetime, str, str, str], Totals]
"""Totals per (hour, kind, key, target): what a batch's records are added to before the grains are built."""


def fold(records: Iterable[AuditRecord]) -> dict[RollupGroup, Totals]:
    """The records' totals per hour and kind, at every grain.

    Each record is added once, to the totals of its (hour, kind, key, target) (`tally`); those are then merged into
    the three grains' groups (`grains`): a batch has few distinct pairs, so this costs about a third of adding every
    record to each grain.
    """
    pairs: Pairs = {}
    tally(pairs, records)
    return grains(pairs)


def tally(pairs: Pairs, records: Iterable[AuditRecord]) -> None:
    """Add each record to the totals of its (hour, kind, key, target) in `pairs` (a batch can be added in parts)."""
    hour = hour_end = None
    for record in records:
        ts = record.ts
        # Most records of a batch fall in the UTC hour of the one before: no `replace` for them.
        if hour is None or hour_end is None or ts.tzinfo is not UTC or not hour <= ts < hour_end:
            hour = hour_of(ts)
            hour_end = hour + _HOUR
        pair = (hour, record.kind, record.key_name or "", record.target)
        totals = pairs.get(pair)
        if totals is None:
            totals = pairs[pair] = Totals()
        totals.add(record)


def grains(pairs: Pairs) -> dict[RollupGroup, Totals]:
    """The pairs' totals merged into the groups of every grain: per key, per target, and all."""
    groups: dict[RollupGroup, Totals] = {}
    for (bucket, kind, key, target), totals in pairs.items():
        for group in (
            RollupGroup(bucket, kind, BY_KEY, key, ""),
            RollupGroup(bucket, kind, BY_TARGET, "", target),
            RollupGroup(bucket, kind, ALL, "", ""),
        ):
            found = groups.get(group)
            if found is None:
                groups[group] = found = Totals()
            found.merge(totals)
    return groups


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The latency (ms) below which a fraction `q` of the counted requests fall, interpolated within its bucket.

    None when nothing was counted. Past the last bound, the last bound is the answer (the histogram knows no more).
    """
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], not {q}")
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            if index == len(LATENCY_BOUNDS_MS):
                return LATENCY_BOUNDS_MS[-1]
            low = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
            high = LATENCY_BOUNDS_MS[index]
            return low + (high - low) * (rank - seen) / count
        seen += count
    return LATENCY_BOUNDS_MS[-1]  # pragma: no cover (the loop always reaches the rank)
