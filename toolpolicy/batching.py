"""Buffered, batched writes off the request path: audit records and spend ledger entries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BatchWriter(Generic[T]):
    """Buffers items and writes them in batches from one background task.

    `emit` never waits on the store. A failed write keeps its records for the next attempt (up to `max_buffer`,
    past which the oldest are dropped and counted), and `aclose` flushes what is left.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[None]],
        *,
        name: str,
        batch_size: int = 200,
        flush_interval: float = 0.5,
        max_buffer: int = 100_000,
    ) -> None:
        self._name = name
        self._write = write
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._buffer: list[T] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.dropped = 0
        self.written = 0

    def emit(self, record: T) -> None:
        self._buffer.append(record)
        if len(self._buffer) > self._max_buffer:
            overflow = len(self._buffer) - self._max_buffer
            del self._buffer[:overflow]
            self.dropped += overflow
            logger.error("%s buffer full: dropped %d oldest items (store unreachable?)", self._name, overflow)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

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
                logger.exception("%s write failed; %d items kept for the next attempt", self._name, len(self._buffer))

    async def flush(self) -> None:
        """Write everything buffered so far, in batches; on failure the unwritten records stay buffered."""
        async with self._lock:
            while self._buffer:
                batch = self._buffer[: self._batch_size]
                await self._write(batch)
                del self._buffer[: len(batch)]
                self.written += len(batch)

    async def aclose(self, *, attempts: int = 5) -> None:
        """Stop the background task and write what is left, retrying a failing store a few times."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for attempt in range(attempts):
            try:
                await self.flush()
                return
            except Exception:
                if attempt == attempts - 1:
                    logger.exception("%s: %d items could not be written at shutdown", self._name, len(self._buffer))
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
