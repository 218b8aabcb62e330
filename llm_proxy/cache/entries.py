"""A cached answer (`Entry`) and the in-process store of them: least recently used first out, bounded by
`max_entries`, each entry served until its `expires_at` on the injected clock."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    """`EntryKey.text()`: scope, route, model and parameters hash."""
    route: str
    """`chat`, `messages` or `responses`."""
    model: str
    """The requested model after alias resolution."""
    key_name: str
    """The virtual key whose request stored it (for `DELETE /admin/cache?key=`)."""
    answered_by: str
    """The `provider/model` that produced the answer."""
    body: dict[str, Any]
    """The answer in the route's non-stream shape, usage included."""
    tokens_in: int
    tokens_out: int
    cost_usd: str
    """What producing the answer cost: what a hit saves."""
    created_at: float
    expires_at: float
    group: str | None = None
    """The semantic cache's hard filter (`semantic.group_of`), when the entry is searchable by meaning."""
    vector: list[float] | None = None
    """The question's embedding, once made (kept so that a restart rebuilds the index without embedding again)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(**data)


class MemoryEntries:
    """The per-replica LRU (not thread-safe: used from the event loop only)."""

    def __init__(
        self, max_entries: int, clock: Callable[[], float], on_remove: Callable[[str], None] | None = None
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self.on_remove = on_remove or (lambda key: None)
        """Told each key that leaves (evicted, expired, discarded, deleted): the semantic index follows."""
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self.clock():
            del self._entries[key]
            self.on_remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, entry: Entry) -> None:
        if entry.expires_at <= self.clock():
            return
        self._entries[entry.key] = entry
        self._entries.move_to_end(entry.key)
        while len(self._entries) > self.max_entries:
            self.on_remove(self._entries.popitem(last=False)[0])

    def discard(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self.on_remove(key)

    def delete(self, matches: Callable[[Entry], bool]) -> int:
        doomed = [key for key, entry in self._entries.items() if matches(entry)]
        for key in doomed:
            del self._entries[key]
            self.on_remove(key)
        return len(doomed)
