"""The semantic cache's parts: the question's text, the hard filter it is searched within, and the vector index.

Isolation is a hard filter, never a similarity score: a semantic match is searched only among entries of the same
scope, route, model and hash of every other parameter (`group_of`: the body without its conversation text). The
similarity decides only between questions that could share an answer anyway.

Search is numpy brute force over a group's unit vectors (one matrix-vector product) while the group holds at most
`BRUTE_FORCE_MAX` of them, where it measures faster than an HNSW index; a larger group moves to `usearch`'s HNSW
index (see docs/cache.md for the figures).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from usearch.index import Index

from llm_proxy.cache.keying import EntryKey, parameters_hash

TEXT_FIELDS = {"chat": ("messages",), "messages": ("messages", "system"), "responses": ("input", "instructions")}


def _text(content: Any) -> str | None:
    """A message's text, or None when it holds anything but text (images, files, tool results)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text", "output_text"):
                return None
            parts.append(str(part.get("text") or ""))
        return "\n".join(parts)
    return None


def question_text(route: str, body: dict[str, Any], max_messages: int) -> str | None:
    """The conversation as one text (`role: text` lines), or None when it cannot be cached semantically: more than
    `max_messages` messages, or content other than text."""
    lines: list[str] = []
    system = body.get("system") if route == "messages" else body.get("instructions") if route == "responses" else None
    if system is not None:
        text = _text(system)
        if text is None:
            return None
        lines.append(f"system: {text}")
    messages = body.get("input") if route == "responses" else body.get("messages")
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, list) or not messages or len(messages) > max_messages:
        return None
    for message in messages:
        if not isinstance(message, dict) or message.get("type", "message") != "message":
            return None
        text = _text(message.get("content"))
        if text is None or message.get("tool_calls"):
            return None
        lines.append(f"{message.get('role')}: {text}")
    return "\n".join(lines)


def group_of(key: EntryKey, body: dict[str, Any]) -> str:
    """The hard filter: scope, route, model and the hash of every parameter but the conversation text."""
    rest = {name: value for name, value in body.items() if name not in TEXT_FIELDS[key.route]}
    return f"{key.scope}|{key.route}|{key.model}|{parameters_hash(rest)}"


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
