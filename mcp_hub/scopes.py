"""anyio cancel scopes for the per-request paths, made without asking which event loop runs them.

`anyio.CancelScope()` and `anyio.current_time()` look up the running async library (sniffio, then the current task)
each time they are called, several times a request; the hub runs on asyncio only (its fast paths use asyncio's own
tasks, locks and timers), so these make asyncio's scope, and read its loop's clock, directly: the same objects.
"""

from __future__ import annotations

import asyncio
import math

import anyio
from anyio._backends._asyncio import CancelScope as _AsyncioCancelScope


def cancel_scope(*, deadline: float = math.inf, shield: bool = False) -> anyio.CancelScope:
    """`anyio.CancelScope(deadline=deadline, shield=shield)`, in a task on asyncio."""
    return _AsyncioCancelScope(deadline=deadline, shield=shield)


def current_time() -> float:
    """`anyio.current_time()`: the running asyncio loop's clock."""
    return asyncio.get_running_loop().time()
