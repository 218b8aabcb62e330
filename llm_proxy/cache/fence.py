"""Why a clear wins over a write under way: every clear opens a new generation, and a write is tagged with the
generation its request looked up in.

- A write (into memory, or into the shared tier) whose generation is older than a clear that matches its entry is
  dropped: its answer was produced for a request that started before the clear.
- A shared-tier write that already started when the clear came is waited for (`settled`) before the clear deletes
  from the shared tier, so it cannot land after the delete.

Only this replica's writes are fenced: a write under way on another replica is not seen here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from llm_proxy.cache.entries import Entry, matching

KEPT_CLEARS = 256
"""Clears remembered with their filters; a write older than all of them is dropped whatever its entry."""


@dataclass(frozen=True, slots=True)
class Clear:
    generation: int
    key_name: str | None
    model: str | None

    def matches(self, entry: Entry) -> bool:
        return matching(self.key_name, self.model)(entry)


class ClearFence:
    def __init__(self) -> None:
        self.generation = 0
        """Bumped by each clear; a request's lookup reads it, its writes carry it."""
        self._clears: deque[Clear] = deque(maxlen=KEPT_CLEARS)
        self._landing: set[asyncio.Future[None]] = set()

    def clear(self, key_name: str | None, model: str | None) -> None:
        """A clear begins: every write of an older generation whose entry it matches is dropped from now on."""
        self.generation += 1
        self._clears.append(Clear(self.generation, key_name, model))

    def cleared_since(self, generation: int, entry: Entry) -> bool:
        """Whether a clear that matches `entry` began after `generation` (then its write must not land)."""
        if generation == self.generation:
            return False
        if not self._clears or self._clears[0].generation > generation + 1:
            return True  # the clears since then are no longer all remembered: drop it to be safe
        return any(clear.generation > generation and clear.matches(entry) for clear in self._clears)

    @asynccontextmanager
    async def landing(self) -> AsyncIterator[None]:
        """Around a shared-tier write that has passed `cleared_since`: a clear waits for it to end."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._landing.add(done)
        try:
            yield
        finally:
            self._landing.discard(done)
            done.set_result(None)

    async def settled(self) -> None:
        """Wait for the shared-tier writes under way now (not those that start later: `cleared_since` stops them)."""
        under_way = list(self._landing)
        if under_way:
            await asyncio.wait(under_way)
