"""Audit records: one per request a decision touched, written off the hot path in batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    request_id: str
    kind: str
    """`authorize`, `llm`, `tool_call`, ..."""
    target: str
    decision: str
    """`allow` or `deny`."""
    status: int
    latency_ms: float
    key_id: str | None = None
    key_name: str | None = None
    team: str | None = None
    customer: str | None = None
    reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: Decimal | None = None
    details: dict[str, Any] = field(default_factory=dict)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


WriteBatch = Callable[[list[AuditRecord]], Awaitable[None]]


class AuditWriter:
    """Buffers records and writes them in batches from one background task.

    `emit` never waits on the store. A failed write keeps its records for the next attempt (up to `max_buffer`,
    past which the oldest are dropped and counted), and `aclose` flushes what is left.
    """

    def __init__(
        self, write: WriteBatch, *, batch_size: int = 200, flush_interval: float = 0.5, max_buffer: int = 100_000
    ) -> None:
        self._write = write
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._buffer: list[AuditRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.dropped = 0
        self.written = 0

    def emit(self, record: AuditRecord) -> None:
        self._buffer.append(record)
        if len(self._buffer) > self._max_buffer:
            overflow = len(self._buffer) - self._max_buffer
            del self._buffer[:overflow]
            self.dropped += overflow
            logger.error("audit buffer full: dropped %d oldest records (store unreachable?)", overflow)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("audit write failed; %d records kept for the next attempt", len(self._buffer))

    async def flush(self) -> None:
        """Write everything buffered so far, in batches; on failure the unwritten records stay buffered."""
        async with self._lock:
            while self._buffer:
                batch = self._buffer[: self._batch_size]
                await self._write(batch)
                del self._buffer[: len(batch)]
                self.written += len(batch)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()
