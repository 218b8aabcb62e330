"""A cached answer (`Entry`) and the in-process store of them: least recently used first out, bounded by
`max_entries`, each entry served until its `expires_at` on the injected clock."""

from __future__ import annotations

import base64
import heapq
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


def pack_vector(vector: list[float]) -> str:
    """A vector as base64 of little-endian float32: about a fifth of its JSON list, and what the index keeps anyway
    (it searches float32 unit vectors), so nothing a search sees is lost."""
    packed = array("f", vector)
    if packed.itemsize != 4:  # pragma: no cover - every platform Python supports has a 4-byte C float
        raise RuntimeError("float32 is not 4 bytes here")
    return base64.b64encode(packed.tobytes()).decode("ascii")


def unpack_vector(text: str) -> list[float]:
    return array("f", base64.b64decode(text)).tolist()


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

    @property
    def searchable(self) -> bool:
        """Whether the semantic index takes it: it has its hard-filter group and its vector."""
        return self.group is not None and self.vector is not None

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON, its vector packed (`pack_vector`)."""
        data = asdict(self)
        if self.vector is not None:
            data["vector"] = pack_vector(self.vector)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        """An entry from `to_json`'s shape; a vector stored as a JSON list (before vectors were packed) reads too."""
        vector = data.get("vector")
        if isinstance(vector, str):
            data = {**data, "vector": unpack_vector(vector)}
        return cls(**data)


def matching(key_name: str | None, model: str | None) -> Callable[[Entry], bool]:
    """What `DELETE /admin/cache` removes: every entry, or those one key stored, or of one model, or both."""
    return lambda entry: (key_name is None or entry.key_name == key_name) and (model is None or entry.model == model)


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
        self._expiries: list[tuple[float, str]] = []
        """A heap of `(expires_at, key)` for `expire`; stale pairs (the key since replaced or removed) are skipped
        when they come up, and the heap is rebuilt when they outnumber the entries."""

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

    def peek(self, key: str) -> Entry | None:
        """The entry under `key` as it is, expired or not, without counting as a use."""
        return self._entries.get(key)

    def put(self, entry: Entry) -> None:
        if entry.expires_at <= self.clock():
            return
        self._entries[entry.key] = entry
        self._entries.move_to_end(entry.key)
        heapq.heappush(self._expiries, (entry.expires_at, entry.key))
        if len(self._expiries) > 2 * len(self._entries) + 1024:
            self._expiries = [(kept.expires_at, key) for key, kept in self._entries.items()]
            heapq.heapify(self._expiries)
        while len(self._entries) > self.max_entries:
            self.on_remove(self._entries.popitem(last=False)[0])

    def expire(self) -> int:
        """Remove every entry past its `expires_at` now (so its vector leaves the index even if nobody asks for it);
        the number removed. Costs one heap look when nothing expired."""
        now = self.clock()
        removed = 0
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, key = heapq.heappop(self._expiries)
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at == expires_at:
                del self._entries[key]
                self.on_remove(key)
                removed += 1
        return removed

    def discard(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self.on_remove(key)

    def delete(self, matches: Callable[[Entry], bool]) -> int:
        doomed = [key for key, entry in self._entries.items() if matches(entry)]
        for key in doomed:
            del self._entries[key]
            self.on_remove(key)
        return len(doomed)
