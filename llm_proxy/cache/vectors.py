"""The semantic cache's vector index, per hard-filter group (`semantic.group_of`).

Search is numpy brute force over a group's unit vectors (one matrix-vector product) while the group holds at most
`BRUTE_FORCE_MAX` of them, where it measures faster than an HNSW index; a larger group moves to `usearch`'s HNSW
index (see docs/cache.md for the figures). numpy and usearch cost about 30 MiB resident once imported: only a
cache with `semantic` configured imports this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from usearch.index import Index


def unit(vector: list[float]) -> np.ndarray[Any, np.dtype[np.float32]] | None:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return None if norm == 0 or not np.isfinite(norm) else array / norm


Matrix = np.ndarray[Any, np.dtype[np.float32]]
BRUTE_FORCE_MAX = 1024
"""Vectors a group searches by brute force; past this it builds an HNSW index."""


class _Group:
    """One group's unit vectors: rows `[0, len(keys))` of a buffer that doubles when full; a removal moves the last
    row into the hole, so adding and removing cost one row each."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self.keys: list[str] = []
        self.rows: dict[str, int] = {}
        self.matrix: Matrix = np.empty((8, dimensions), dtype=np.float32)
        self.hnsw: Index | None = None
        """The HNSW index once the group outgrew brute force; rows then keep their number for good (its labels)."""

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, key: str, vector: Matrix) -> None:
        if self.hnsw is not None:
            label = len(self.keys)
            self.keys.append(key)
            self.rows[key] = label
            self.hnsw.add(label, vector)
            return
        if len(self.keys) >= BRUTE_FORCE_MAX:
            self.hnsw = Index(ndim=self.dimensions, metric="ip", dtype="f32")
            self.hnsw.add(np.arange(len(self.keys), dtype=np.uint64), self.matrix[: len(self.keys)])
            self.matrix = np.empty((0, self.dimensions), dtype=np.float32)
            self.add(key, vector)
            return
        if len(self.keys) == self.matrix.shape[0]:
            self.matrix = np.concatenate([self.matrix, np.empty_like(self.matrix)])
        self.matrix[len(self.keys)] = vector
        self.rows[key] = len(self.keys)
        self.keys.append(key)

    def remove(self, key: str) -> None:
        row = self.rows.pop(key)
        if self.hnsw is not None:
            self.hnsw.remove(row)
            return
        last = self.keys.pop()
        if last != key:
            self.matrix[row] = self.matrix[len(self.keys)]
            self.keys[row] = last
            self.rows[last] = row

    def search(self, query: Matrix) -> tuple[str, float] | None:
        if self.hnsw is not None:
            found = self.hnsw.search(query, 1)
            if len(found.keys) == 0:
                return None
            return self.keys[int(found.keys[0])], 1.0 - float(found.distances[0])
        scores = self.matrix[: len(self.keys)] @ query
        best = int(np.argmax(scores))
        return self.keys[best], float(scores[best])


class VectorIndex:
    """Unit vectors by group, each with its entry key; brute-force cosine search within one group."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}
        self._where: dict[str, str] = {}
        """Entry key -> its group."""

    def __len__(self) -> int:
        return len(self._where)

    def add(self, group: str, key: str, vector: list[float]) -> None:
        array = unit(vector)
        if array is None:
            return
        self.remove(key)
        found = self._groups.setdefault(group, _Group(array.shape[0]))
        if found.dimensions != array.shape[0]:
            return  # another embedding model's size: the group keeps the size it has
        found.add(key, array)
        self._where[key] = group

    def remove(self, key: str) -> None:
        group = self._where.pop(key, None)
        if group is None:
            return
        found = self._groups[group]
        found.remove(key)
        if not len(found):
            del self._groups[group]

    def search(self, group: str, vector: list[float]) -> tuple[str, float] | None:
        """The nearest entry key in `group` and its cosine similarity, or None when the group is empty."""
        found = self._groups.get(group)
        query = unit(vector)
        if found is None or query is None or found.dimensions != query.shape[0]:
            return None
        return found.search(query)
