"""One text as RE2 reads it, encoded once, and RE2 patterns run on it without the `re2` module's per-call costs.

`re2`'s Python `finditer`/`search` encode the text to UTF-8 and map byte offsets back to characters on every call:
with a score of patterns per text that is most of a scan's cost (about 2.7 µs a pattern on a short text, against
1.2 µs for RE2 itself). Here a text is encoded once (`Subject`), and on an ASCII text, where a byte offset is a
character offset, patterns run on RE2's own `Match` directly; a text with other characters goes through `re2`'s
`finditer`, which does the offset mapping.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import re2  # type: ignore[import-untyped]

_UNANCHORED = re2._Anchor.UNANCHORED
_NO_SPAN = (-1, -1)


class Subject:
    """A text and its UTF-8 bytes; `ascii` when offsets in one are offsets in the other."""

    __slots__ = ("ascii", "data", "gated", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8")
        self.ascii = len(self.data) == len(text)
        self.gated: tuple[object, list[int]] | None = None
        """The gate set that prefiltered this text and what it matched (`GateSet`): one pass per text."""


class Pattern:
    """A compiled RE2 pattern, run on a `Subject`."""

    __slots__ = ("compiled", "groups", "raw")

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.raw = compiled._regexp
        """RE2 itself (`re2._re2.RE2`): `Match(anchor, bytes, pos, endpos)` gives every group's byte span."""
        self.groups = int(compiled.groups)

    def spans(self, subject: Subject, group: int = 0) -> Iterator[tuple[int, int]]:
        """Each non-overlapping match's span of `group` (character offsets), left to right, as `finditer` gives."""
        if not subject.ascii:
            for match in self.compiled.finditer(subject.text):
                yield match.span(group)
            return
        data, raw = subject.data, self.raw
        pos, end = 0, len(data)
        while True:
            found = raw.Match(_UNANCHORED, data, pos, end)
            whole = found[0]
            if whole == _NO_SPAN:
                return
            yield found[group]
            if pos == end:
                return
            pos = whole[1] + 1 if whole[1] == pos else whole[1]  # an empty match at `pos` moves on one

    def search(self, subject: Subject, pos: int) -> int | None:
        """Where the first match at or after `pos` begins, or None."""
        if not subject.ascii:
            match = self.compiled.search(subject.text, pos)
            return None if match is None else int(match.start())
        data = subject.data
        start = self.raw.Match(_UNANCHORED, data, min(max(pos, 0), len(data)), len(data))[0][0]
        return None if start < 0 else int(start)
