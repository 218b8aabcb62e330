"""Time windows of budgets (calendar or rolling periods) and rate limits (fixed windows), as counter bucket ids."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from toolpolicy.limits import BudgetPeriod, Rate

PERIOD_SECONDS: dict[str, int] = {"1h": 3600, "1d": 86400, "1w": 7 * 86400, "1M": 30 * 86400}
"""Lengths of rolling periods; a rolling `1M` is 30 days."""
ROLLING_BUCKETS = 60
"""A rolling window is summed over this many buckets (plus the current one), so it errs on the side of denying."""
SLACK_SECONDS = 86400
"""Counters outlive their window by this much, so a late settlement still finds its counter."""


@dataclass(frozen=True, slots=True)
class Window:
    """Where usage in a window is counted."""

    used_ids: tuple[str, ...]
    """Bucket ids whose sum is the usage in the window."""
    add_id: str
    """The bucket id new usage is added to."""
    start: datetime
    """The earliest instant counted (for summing the ledger)."""
    since: float
    """Epoch seconds from which these bucket ids are the window's (its current bucket began)."""
    until: float | None
    """Epoch seconds when the current bucket ends: usage starts to fall, and the bucket ids change (None: a
    lifetime budget never resets). Between `since` and `until` the window is the same for every request."""
    ttl: int | None
    """Seconds the counters must be kept (None: forever): a whole window plus slack, the same for every request in
    the window, so a limit's encoding is too."""
    bucket_seconds: int | None = None
    """For rolling windows: the length of one bucket (bucket id = epoch seconds // bucket_seconds)."""
    id_prefix: str | None = None
    """For rolling windows: `used_ids` are this prefix followed by consecutive bucket numbers."""

    def resets_in(self, now: float) -> float | None:
        """Seconds from `now` (epoch seconds) until usage starts to fall (None: never)."""
        return None if self.until is None else self.until - now


def _calendar_start(period: BudgetPeriod, now: datetime) -> tuple[datetime, datetime]:
    if period == "1h":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "1d":
        return day, day + timedelta(days=1)
    if period == "1w":
        start = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def budget_window(period: BudgetPeriod | None, rolling: bool, now: datetime) -> Window:
    """The window of a budget at `now` (an aware UTC datetime)."""
    if period is None:
        return Window(("life",), "life", datetime.min.replace(tzinfo=UTC), float("-inf"), None, None)
    if not rolling:
        start, end = _calendar_start(period, now)
        bucket = f"{period}@{start:%Y%m%dT%H}"
        length = int((end - start).total_seconds())
        return Window((bucket,), bucket, start, start.timestamp(), end.timestamp(), length + SLACK_SECONDS)
    length = PERIOD_SECONDS[period]
    bucket_seconds = length // ROLLING_BUCKETS
    current = int(now.timestamp()) // bucket_seconds
    ids = _rolling_ids(period, current)
    start = datetime.fromtimestamp((current - ROLLING_BUCKETS) * bucket_seconds, UTC)
    # Usage starts to fall when the oldest bucket leaves the window.
    since, until = current * bucket_seconds, (current + 1) * bucket_seconds
    ttl = length + bucket_seconds + SLACK_SECONDS
    return Window(ids, ids[-1], start, since, until, ttl, bucket_seconds, f"{period}r@")


@functools.lru_cache(maxsize=256)
def _rolling_ids(period: str, current: int) -> tuple[str, ...]:
    """The buckets of a rolling window ending with bucket `current` (the same for every request in that bucket)."""
    return tuple(f"{period}r@{index}" for index in range(current - ROLLING_BUCKETS, current + 1))


def rate_window(rate: Rate, now: datetime) -> Window:
    """A fixed window aligned to the epoch: the usual, exactly-countable rate limit window."""
    index = int(now.timestamp()) // rate.window_seconds
    bucket = f"{rate.window_seconds}s@{index}"
    start = datetime.fromtimestamp(index * rate.window_seconds, UTC)
    since, until = index * rate.window_seconds, (index + 1) * rate.window_seconds
    return Window((bucket,), bucket, start, since, until, rate.window_seconds + 60)


def format_reset(seconds: float) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `1h2m3s`."""
    return _format_whole(max(0, math.ceil(seconds)))


def format_reset_raw(seconds: float) -> bytes:
    """`format_reset` as a raw header value (latin-1)."""
    return _format_whole_raw(max(0, math.ceil(seconds)))


@functools.lru_cache(maxsize=4096)
def _format_whole_raw(whole: int) -> bytes:
    return _format_whole(whole).encode("latin-1")


@functools.lru_cache(maxsize=4096)
def _format_whole(whole: int) -> str:
    """Every admitted request formats its windows' resets: a window's seconds left repeat request after request."""
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
