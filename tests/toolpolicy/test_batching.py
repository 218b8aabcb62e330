"""The batch writer writes what was waiting when it flushes: a steady stream does not become one write per item."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from toolpolicy.batching import BatchWriter, Emitted, WriterMark, in_slices

pytestmark = pytest.mark.anyio


async def test_a_flush_leaves_what_arrives_during_its_write_for_the_next() -> None:
    writes: list[list[int]] = []
    arriving = iter(range(100, 200))

    async def write(batch: list[Emitted[int]], mark: WriterMark) -> None:
        writes.append([emitted.item for emitted in batch])
        writer.emit(next(arriving))  # requests keep coming while the store writes
        await asyncio.sleep(0)

    writer = BatchWriter[int](write, name="test", batch_size=2)
    for item in range(5):
        writer.emit(item)
    await writer.flush()
    assert writes == [[0, 1], [2, 3], [4]]
    assert writer.pending == 3
    await writer.flush()
    assert writes[3:] == [[100, 101], [102]]
    assert (writer.written, writer.pending) == (8, 2)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_closing_the_moment_a_full_batch_woke_the_writer_still_stops_it(turns: int) -> None:
    """The wake-up and the cancellation can land in the same turn of the loop: neither may be lost, and nothing is."""
    written: list[int] = []

    async def write(batch: list[Emitted[int]], mark: WriterMark) -> None:
        written.extend(emitted.item for emitted in batch)

    writer = BatchWriter[int](write, name="test", batch_size=4, flush_interval=60)
    writer.start()
    task = writer._task
    assert task is not None
    for _ in range(3):
        await asyncio.sleep(0)  # the writer's task is waiting to be woken
    for item in range(4):
        writer.emit(item)  # a full batch: wakes it
    for _ in range(turns):
        await asyncio.sleep(0)
    with anyio.move_on_after(30) as guard:  # a hang guard, not a speed bound
        await writer.aclose()
    assert not guard.cancel_called, "aclose() never returned: the writer's task missed its cancellation"
    assert task.done()
    assert written == [0, 1, 2, 3] and writer.pending == 0


async def test_in_slices_gives_every_item_in_order_and_lets_the_loop_run_between_slices() -> None:
    turns: list[str] = []

    async def other_request() -> None:
        while True:
            turns.append("request")
            await asyncio.sleep(0)

    task = asyncio.create_task(other_request())
    await asyncio.sleep(0)
    turns.clear()
    try:
        parts = []
        async for part in in_slices(list(range(10)), 4):
            turns.append("slice")
            parts.append(list(part))
    finally:
        task.cancel()
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert turns[turns.index("slice") :][:5] == ["slice", "request", "slice", "request", "slice"]
