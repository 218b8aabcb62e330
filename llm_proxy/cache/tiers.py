"""The shared tier behind the in-process LRU: what every replica and every restart sees."""

from __future__ import annotations

from typing import Protocol

from llm_proxy.cache.entries import Entry


class SharedTier(Protocol):
    name: str
    read_on_miss: bool
    """Whether a memory miss reads this tier (Redis, shared live); the store is only loaded at start."""

    async def get(self, key: str, now: float) -> Entry | None: ...

    async def put(self, entry: Entry) -> None: ...

    async def discard(self, key: str) -> None: ...

    async def delete(self, key_name: str | None, model: str | None) -> int: ...

    async def count(self, now: float) -> int: ...

    async def newest(self, limit: int, now: float) -> list[Entry]: ...

    async def close(self) -> None: ...
