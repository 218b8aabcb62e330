"""The shared tier behind the in-process LRU: what every replica and every restart sees, and how a replica's
memory follows what other replicas store and remove (`Local`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from llm_proxy.cache.entries import Entry, MemoryEntries, matching

SWEEP_INTERVAL = 1.0
"""Seconds between sweeps of expired entries out of memory (and so out of the semantic index)."""


class Local:
    """One replica's memory as a shared tier updates it: entries other replicas stored, and their removals."""

    def __init__(
        self,
        memory: MemoryEntries,
        keep: Callable[[Entry], None],
        cleared: Callable[[str | None, str | None], None] = lambda key_name, model: None,
    ) -> None:
        self.memory = memory
        self._cleared = cleared
        """Told of another replica's clear, so this replica's own writes still under way for it are dropped."""
        self._keep = keep
        """Puts an entry in memory and, when it is searchable, in the semantic index."""

    @property
    def clock(self) -> Callable[[], float]:
        return self.memory.clock

    def keep(self, entry: Entry) -> None:
        """Take another replica's entry, unless memory already holds it or a newer one under its key (indexing a
        vector again costs an HNSW insert in a large group)."""
        held = self.memory.peek(entry.key)
        if held is not None and held.created_at >= entry.created_at and (held.searchable or not entry.searchable):
            return
        self._keep(entry)

    def forget(self, key: str) -> None:
        self.memory.discard(key)

    def forget_matching(self, key_name: str | None, model: str | None) -> None:
        self._cleared(key_name, model)
        self.memory.delete(matching(key_name, model))

    def retain(self, live: Iterable[str], *, searchable_only: bool) -> None:
        """Drop the entries (all, or the searchable ones) whose keys are not in `live`, what the shared tier holds:
        removals missed while it was away."""
        kept = set(live)
        self.memory.delete(lambda entry: (entry.searchable or not searchable_only) and entry.key not in kept)


class SharedTier(Protocol):
    name: str
    read_on_miss: bool
    """Whether a memory miss reads this tier (Redis, or the store on PostgreSQL: shared live); SQLite is only
    loaded at start."""

    async def get(self, key: str, now: float) -> Entry | None: ...

    async def put(self, entry: Entry) -> None: ...

    async def discard(self, key: str) -> None: ...

    async def delete(self, key_name: str | None, model: str | None) -> int: ...

    async def count(self, now: float) -> int: ...

    async def newest(self, limit: int, now: float) -> list[Entry]: ...

    async def follow(self, local: Local) -> None:
        """Keep `local` up to date from now on: what other replicas store and remove, and expiry. Returns once it
        listens (or gave up waiting for that); `close` stops it."""
        ...

    async def close(self) -> None: ...


class Tasks:
    """A tier's background tasks: started with it, cancelled by `close`."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, work: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(work))
        self._tasks[-1].set_name(name)

    def sweep(self, local: Local, interval: float = SWEEP_INTERVAL) -> None:
        """Remove expired entries from `local` every `interval` seconds."""

        async def sweeping() -> None:
            while True:
                await asyncio.sleep(interval)
                local.memory.expire()

        self.start(sweeping(), "cache expiry sweep")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
