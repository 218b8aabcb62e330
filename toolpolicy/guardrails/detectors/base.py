"""What every detector is: `find(text)` returns its findings; `window` and `starters` tell a stream what to hold."""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # the stdlib parser, to read a maximum width
from dataclasses import dataclass
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]

UNBOUNDED_WINDOW = 1024
"""The hold-back, in characters, for a pattern with no upper bound on its length (`\\s+`, `.*`): a match longer than
this that arrives split across stream chunks may be missed; in one chunk, or in a non-streamed text, it is not."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One match: its span in the scanned text and what it is (an entity, a secret type or the rule's name)."""

    start: int
    end: int
    label: str


class Detector(Protocol):
    """Finds matches in text, in linear time."""

    window: int
    """The longest match it can make, in characters: a stream holds this much back before it can be sure."""
    starters: tuple[tuple[Any, int], ...]
    """(RE2 pattern, window) pairs, or none: every match begins with one of the patterns and is at most its window
    long, so a stream holds back only from where one occurs (within its window)."""
    starter_length: int
    """The longest text a starter can match (a starter cut by a chunk boundary is held back too)."""

    def find(self, text: str) -> list[Finding]: ...


def max_width(pattern: str, cap: int = UNBOUNDED_WINDOW) -> int:
    """The longest text `pattern` can match, at most `cap` (also when the stdlib cannot parse the pattern)."""
    try:
        width = int(sre_parse.parse(pattern).getwidth()[1])
    except (re.error, OverflowError, RecursionError, ValueError):
        return cap
    return min(width, cap)


def compile_re2(pattern: str) -> Any:
    """An RE2 pattern that stays linear-time; errors are `re2.error`."""
    options = re2.Options()
    options.max_mem = 8 << 20
    options.log_errors = False
    return re2.compile(pattern, options)


class PatternDetector:
    """A table of (label, RE2 pattern, optional validator); every label's matches, validated."""

    def __init__(
        self,
        table: list[tuple[str, str, Any]],
        *,
        window: int | None = None,
        starters: tuple[tuple[str, int], ...] = (),
        starter_length: int = 0,
    ) -> None:
        self.table = [(label, compile_re2(pattern), check) for label, pattern, check in table]
        self.window = window if window is not None else max(max_width(pattern) for _, pattern, _ in table)
        self.starters = tuple((compile_re2(pattern), width) for pattern, width in starters)
        self.starter_length = starter_length
        self.whole_match = False
        """Whether a pattern's first group is ignored (operator patterns); otherwise a group, when there is one,
        is the finding (a secret's value, not the name it is assigned to)."""

    def find(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for label, pattern, check in self.table:
            group = 1 if pattern.groups and not self.whole_match else 0
            for match in pattern.finditer(text):
                start, end = match.span(group)
                if end > start and (check is None or check(text[start:end])):
                    found.append(Finding(start, end, label))
        if len(found) < 2:
            return found
        # Overlaps: the earliest, then longest, finding names the stretch (a phone-shaped run inside a card).
        found.sort(key=lambda finding: (finding.start, -finding.end))
        kept = [found[0]]
        for finding in found[1:]:
            if finding.start >= kept[-1].end:
                kept.append(finding)
        return kept
