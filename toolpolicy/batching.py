"""Buffered, batched writes off the request path: audit records and spend ledger entries.

A write can fail in two ways that need opposite handling. When the store is unreachable, every record is fine and
must wait: the writer keeps them, backs off and tries again, for as long as it takes. When the store rejects a record
(a string it cannot take, a number out of range), retrying cannot help and must not hold up the rest: the failing
batch is split in halves until the record is isolated, that record is written in its quarantined (escaped) form,
and everything else is written as it is.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StoreUnavailable(ConnectionError):
    """The store could not take a write for reasons of its own (unreachable, overloaded): the records were kept."""


# Not `frozen`: a frozen dataclass sets each field through `object.__setattr__`, and every request's record is
# wrapped in one per writer it goes to. Treat it as immutable all the same (the writers hand it on as it is).
@dataclass(slots=True)
class Emitted(Generic[T]):
    """One item with its emission number: 1, 2, 3... in the order this writer was given them."""

    number: int
    item: T


@dataclass(frozen=True, slots=True)
class WriterMark:
    """Who is writing, and how far its emissions have gone: lets the store tell emitted-but-never-written records."""

    writer_id: str
    emitted: int
    """The highest emission number handed out so far (the batch being written may not reach it)."""
    dropped: int
    closed: bool = False
    """The writer has stopped: nothing numbered above `emitted` will ever come."""


Write = Callable[[list[Emitted[T]], WriterMark], Awaitable[None]]


class BatchWriter(Generic[T]):
    """Buffers items and writes them in batches from one background task.

    `emit` never waits on the store. `is_record_fault(error)` tells a rejected record (quarantined: split, escaped
    by `quarantine(item, error)`, written) from a store that could not write (everything kept, retried with backoff
    between `retry_initial` and `retry_max` seconds, forever). Past `max_buffer` waiting items the oldest are
    dropped, counted and logged: memory is bounded even when the store is down for long.
    """

    def __init__(
        self,
        write: Write[T],
        *,
        name: str,
        batch_size: int = 200,
        flush_interval: float = 0.5,
        max_buffer: int = 100_000,
        is_record_fault: Callable[[BaseException], bool] = lambda error: False,
        quarantine: Callable[[T, BaseException], T] | None = None,
        on_quarantine: Callable[[], None] = lambda: None,
        on_drop: Callable[[int], None] = lambda count: None,
        forget: Callable[[T], None] | None = None,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self.name = name
        self.writer_id = uuid.uuid4().hex
        """This writer's identity in the store: emission numbers count from 1 within it."""
        self._write = write
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._is_record_fault = is_record_fault
        self._quarantine = quarantine
        self._on_quarantine = on_quarantine
        self._on_drop = on_drop
        self._forget = forget
        """Told of each item a full buffer drops, for a writer whose items stand for state kept elsewhere."""
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._buffer: deque[Emitted[T]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._overflowing = False
        self._in_flight = 0
        self.emitted = 0
        self.written = 0
        """Items in the store, quarantined ones included."""
        self.quarantined = 0
        self.dropped = 0
        """Items lost: buffer overflow, a quarantined form the store rejected too, or a store down at shutdown."""
        self.failed_attempts = 0
        """Consecutive flushes that failed (0 when the last one wrote everything)."""

    def emit(self, record: T) -> None:
        self.emitted += 1
        self._buffer.append(Emitted(self.emitted, record))
        if len(self._buffer) > self._max_buffer:
            dropped = self._buffer.popleft()
            self._drop(1, "buffer full (store unreachable?): dropping the oldest waiting items")
            if self._forget is not None:
                self._forget(dropped.item)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        self._on_drop(count)
        if not self._overflowing:  # once per episode: a full buffer drops on every emit
            self._overflowing = True
            logger.error("%s: %s (%d dropped so far)", self.name, why, self.dropped)

    @property
    def pending(self) -> int:
        """Items emitted and not yet written: waiting, or in a write under way."""
        return len(self._buffer) + self._in_flight

    def stats(self) -> dict[str, Any]:
        return {
            "writer_id": self.writer_id,
            "pending": self.pending,
            "emitted": self.emitted,
            "written": self.written,
            "quarantined": self.quarantined,
            "dropped": self.dropped,
            "failing": self.failed_attempts > 0,
        }

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            try:
                # Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that lands as the wait ends
                # (a full batch woke the writer as `aclose` cancelled it), and `aclose` would wait forever.
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                delay = min(self._retry_max, self._retry_initial * 2 ** min(self.failed_attempts - 1, 30))
                if isinstance(exc, StoreUnavailable):
                    logger.error("%s; %d items kept, retrying in %.1fs", exc, self.pending, delay)
                else:
                    logger.exception("%s write failed; %d kept, retrying in %.1fs", self.name, self.pending, delay)
                await asyncio.sleep(delay)

    async def flush(self) -> None:
        """Write everything buffered so far; raises StoreUnavailable (keeping what was not written) if the store is.

        Items emitted while it writes wait for the next flush: draining until the buffer is empty would, under a
        steady stream of records, write one small transaction after another instead of one batch per interval.
        """
        async with self._lock:
            try:
                remaining = len(self._buffer)  # everything emitted before this call that is still waiting
                while remaining > 0 and self._buffer:
                    batch = [self._buffer.popleft() for _ in range(min(self._batch_size, remaining, len(self._buffer)))]
                    remaining -= len(batch)
                    self._in_flight = len(batch)
                    try:
                        await self._write_isolating(batch)
                    finally:
                        self._in_flight = 0
            except BaseException:
                self.failed_attempts += 1
                raise
            self.failed_attempts = 0
            self._overflowing = False

    async def _write_isolating(self, batch: list[Emitted[T]]) -> None:
        """Write `batch` in order, splitting around rejected records; whatever is not written goes back on failure."""
        chunks: deque[list[Emitted[T]]] = deque([batch])
        try:
            while chunks:
                chunk = chunks[0]
                try:
                    await self._write(chunk, self._mark())
                except Exception as exc:
                    if not self._is_record_fault(exc):
                        raise StoreUnavailable(f"{self.name}: {first_line(exc)}") from exc
                    if len(chunk) > 1:
                        chunks.popleft()
                        middle = len(chunk) // 2
                        chunks.extendleft((chunk[middle:], chunk[:middle]))
                        continue
                    await self._write_quarantined(chunk[0], exc)
                else:
                    self.written += len(chunk)
                chunks.popleft()
                self._in_flight -= len(chunk)
        except BaseException:
            # Unwritten items go back to the front, in order: cancellation and bugs lose nothing either.
            self._buffer.extendleft(reversed([item for chunk in chunks for item in chunk]))
            raise

    async def _write_quarantined(self, rejected: Emitted[T], error: BaseException) -> None:
        if self._quarantine is None:
            self._lose(rejected, f"the store rejected it ({first_line(error)})")
            return
        try:
            escaped = Emitted(rejected.number, self._quarantine(rejected.item, error))
        except Exception as failure:
            self._lose(rejected, f"the store rejected it ({first_line(error)}); quarantining failed ({failure!r})")
            return
        try:
            await self._write([escaped], self._mark())
        except Exception as again:
            if not self._is_record_fault(again):
                raise StoreUnavailable(f"{self.name}: {first_line(again)}") from again
            self._lose(rejected, f"the store rejected it ({first_line(error)}), quarantined too ({first_line(again)})")
            return
        logger.error(
            "%s: QUARANTINED item %d: the store rejected it (%s); written in escaped form",
            self.name,
            rejected.number,
            first_line(error),
        )
        self.written += 1
        self.quarantined += 1
        self._on_quarantine()

    def _lose(self, rejected: Emitted[T], why: str) -> None:
        logger.error("%s: item %d DROPPED: %s: %r", self.name, rejected.number, why, rejected.item)
        self.dropped += 1
        self._on_drop(1)

    def _mark(self, *, closed: bool = False) -> WriterMark:
        return WriterMark(self.writer_id, self.emitted, self.dropped, closed)

    async def aclose(self, *, attempts: int = 5) -> None:
        """Stop the background task and write what is left, retrying a failing store a few times.

        Raises StoreUnavailable if the store stays down; what could not be written is counted as dropped and logged.
        """
        if self._task is not None:
            # Cancel only between writes: a write cancelled after its commit would be put back and written twice.
            async with self._lock:
                self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for attempt in range(attempts):
            try:
                await self.flush()
                if self.emitted:  # the store learns nothing numbered above `emitted` will come
                    await self._write([], self._mark(closed=True))
                return
            except Exception:
                if attempt == attempts - 1:
                    lost = self.pending
                    if lost:
                        self._buffer.clear()
                        self._drop(lost, "store unavailable at shutdown: the items still waiting are lost")
                    logger.exception("%s: %d items could not be written at shutdown", self.name, lost)
                    raise
                await asyncio.sleep(0.2 * 2**attempt)


async def in_slices(items: Sequence[T], size: int) -> AsyncIterator[Sequence[T]]:
    """`items`, `size` at a time, with the event loop let go between slices: a writer's work on each item of a batch
    (preparing, folding, binding) runs on the loop, and a whole batch in one go would hold every request behind it."""
    for start in range(0, len(items), size):
        if start:
            await asyncio.sleep(0)
        yield items[start : start + size]


def first_line(error: BaseException) -> str:
    """The error's type and first line (a database error goes on with the whole statement and its values)."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
