"""The SDK's `BatchSpanProcessor`, taking each ended light span with less work.

Its `on_end` checks the span's sampled flag (two properties) and its `emit` the process id (a system call, for a
fork the at-fork hook it registers has already handled), then queues the span. A light span is recorded only when
sampled, and where `os.register_at_fork` exists the hook resets the queue and worker in a child before any span
ends there; so such a span goes straight onto the same queue, put there by `LightSpan.end` itself (one call less
per span than through `on_end`). Everything else (the worker thread, the `OTEL_BSP_*` settings, a full queue
dropping the oldest span with its warning and count, shutdown, `force_flush`) is the SDK's own: any case but the
usual one is handed to it.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

_BATCHING = ("_queue", "_shutdown", "_max_queue_size", "_max_export_batch_size", "_worker_awaken")
"""What `LightSpan.end` reads of the SDK's batch processor: with another version lacking any, every span goes the
SDK's way."""


class LightBatchSpanProcessor(BatchSpanProcessor):
    """`BatchSpanProcessor` (same arguments and environment), whose queue an ended light span goes onto directly."""

    def __init__(
        self,
        span_exporter: SpanExporter,
        max_queue_size: int | None = None,
        max_export_batch_size: int | None = None,
    ) -> None:
        super().__init__(
            span_exporter,
            max_queue_size=max_queue_size,
            max_export_batch_size=max_export_batch_size,
        )
        batching = getattr(self, "_batch_processor", None)
        self._direct = hasattr(os, "register_at_fork") and all(hasattr(batching, name) for name in _BATCHING)

    def direct_batching(self) -> Any:
        """The SDK's batch processor, for `LightSpan.end` to queue the usual span on it directly; None when its
        internals are not the ones known here (every span then goes through `on_end`, the SDK's way)."""
        return self._batch_processor if self._direct else None
