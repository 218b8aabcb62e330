"""CPU-heavy request work above a size threshold runs in a worker thread, so the event loop keeps serving.

Small inputs stay on the loop: a thread hop costs more than walking or counting a few kilobytes, and most requests
are small. A megabyte prompt, though, would stall every other connection of the worker while it is walked or
tokenised. tiktoken releases the GIL while it encodes, so counting runs beside the loop; a walk in Python code
holds the GIL, but the interpreter switches threads every few milliseconds, so the loop still gets its turns.

Not JSON parsing: `json.loads` is one C call that holds the GIL from start to end, so in a thread it would stall
the loop just as long, plus a thread hop. The request size cap (`llm.max_request_bytes`) is what bounds it.

At most `WORKERS` such jobs run at once per event loop: a burst of huge requests queues here rather than taking
every thread of anyio's default pool, which other blocking calls (file reads, encodings loading) share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

T = TypeVar("T")
Args = TypeVarTuple("Args")

INLINE_LIMIT = 64 * 1024
"""Inputs up to this size (bytes or characters) are processed on the event loop, without a thread hop."""
WORKERS = 2
"""Heavy jobs running at once in worker threads, per event loop."""

_limiter: RunVar[anyio.CapacityLimiter] = RunVar("isthmus_offload_limiter")


def limiter() -> anyio.CapacityLimiter:
    """This event loop's limiter (a limiter belongs to the loop it was created on)."""
    try:
        return _limiter.get()
    except LookupError:
        created = anyio.CapacityLimiter(WORKERS)
        _limiter.set(created)
        return created


async def run(size: int, func: Callable[[*Args], T], *args: *Args) -> T:
    """`func(*args)`: here when `size` is small, otherwise in a worker thread while the loop goes on."""
    if size <= INLINE_LIMIT:
        return func(*args)
    return await anyio.to_thread.run_sync(func, *args, limiter=limiter())
