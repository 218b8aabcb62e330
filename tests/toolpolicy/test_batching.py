"""The batch writer writes what was waiting when it flushes: a steady stream does not become one write per item."""

from __future__ import annotations

import asyncio

import pytest

from toolpolicy.batching import BatchWriter, Emitted, WriterMark

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
