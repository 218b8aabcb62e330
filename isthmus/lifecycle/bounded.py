"""Shutdown steps that cannot hold the process: each runs as a task that is waited for a bounded time.

`asyncio.timeout` is not enough: it cancels the waiting coroutine, and a step that shields its clean-up (anyio's
`CancelScope(shield=True)`, as MCP transports and sandbox pools do) keeps its awaiter waiting after the cancel.
`asyncio.wait` returns at the deadline whatever the step does; the step is then cancelled and left behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

logger = logging.getLogger(__name__)


async def settle(label: str, step: Awaitable[object], timeout: float) -> bool:
    """Run `step` for at most `timeout` seconds; True when it finished (an error it raised is logged, not raised)."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        logger.error("shutdown: %s did not finish within %gs; going on without it", label, timeout)
        return False
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("shutdown: %s failed: %s", label, error, exc_info=error)
    return True
