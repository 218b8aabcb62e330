"""The audit writers' configuration (`audit:`): batch sizes, flush intervals, retention, the backlog `/ready` allows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuditSettings(BaseModel):
    """How audit records are written."""

    # Every number is finite, as in the rest of the config (`toolpolicy.settings`).
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    batch_size: int = Field(default=1000, ge=1)
    """Records written to the store in one transaction. A larger batch costs less CPU per record (each commit
    rewrites every index's last page); records still wait at most `flush_interval`."""
    flush_interval: float = Field(default=0.5, gt=0)
    """Seconds between flushes when fewer than `batch_size` records are waiting."""
    spend_flush_interval: float = Field(default=0.25, gt=0)
    """Seconds between the spend ledger's flushes (each charged request's cost, what budgets are re-seeded from)
    when fewer than `batch_size` entries are waiting."""
    rate_journal_flush_interval: float = Field(default=0.25, gt=0)
    """Seconds between the rate journal's flushes (rate-limit usage per bucket, what counters that restart empty
    are re-seeded from): usage recorded since the last flush is missing from a seed taken meanwhile."""
    record_arguments: bool = False
    """Keep tool call arguments in audit records (their size and SHA-256 are always kept)."""
    retention_days: float | None = Field(default=None, gt=0)
    """Prune records older than this many days (checked hourly), keeping the chain verifiable; null keeps all."""
    max_backlog: int = Field(default=10_000, ge=1)
    """Records waiting to be written (audit or spend, per writer) past which `/ready` answers 503: the store is not
    taking this replica's writes, so a load balancer should move traffic away before the buffer overflows."""
