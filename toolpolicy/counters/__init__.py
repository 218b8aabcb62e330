"""Counter stores: where rate-limit and budget usage is counted, atomically per check-and-reserve."""

from toolpolicy.counters.base import CounterStore, CounterStoreError, Limit, ReserveOutcome

__all__ = ["CounterStore", "CounterStoreError", "Limit", "ReserveOutcome"]
