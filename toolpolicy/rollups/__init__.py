"""Hourly rollups of recorded requests: what the dashboard's charts read instead of the audit trail.

`fold` turns a batch of audit records into per-(hour, kind, key, target) totals with a latency histogram;
`RollupStore` adds those totals to the `request_rollups` table (one upsert per batch) and reads them back.
"""

from toolpolicy.rollups.fold import HISTOGRAM_BUCKETS, LATENCY_BOUNDS_MS, RollupGroup, Totals, fold, percentile
from toolpolicy.rollups.store import RollupStore, Window

__all__ = [
    "HISTOGRAM_BUCKETS",
    "LATENCY_BOUNDS_MS",
    "RollupGroup",
    "RollupStore",
    "Totals",
    "Window",
    "fold",
    "percentile",
]
