"""What every detector is: `find(text)` returns its findings; `window` and `starters` tell a stream what to hold."""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # the stdlib parser, to read a maximum width
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]

from toolpolicy.guardrails.detectors.subject import Pattern, Subject

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
    starters: tuple[tuple[Pattern, int], ...]
    """(pattern, window) pairs, or none: every match begins with one of the patterns and is at most its window
    long, so a stream holds back only from where one occurs (within its window)."""
    starter_length: int
    """The longest text a starter can match (a starter cut by a chunk boundary is held back too)."""

    gates: tuple[str | None, ...]
    """Per row of the detector's table, a small RE2 pattern that matches wherever the row could, or None."""

    def find(self, text: str) -> list[Finding]: ...

    def scan(self, subject: Subject, rows: Collection[int] | None = None) -> list[Finding]:
        """The findings of the given rows (all by default) in an already encoded text."""
        ...


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
    """A table of (label, RE2 pattern, optional validator); every label's matches, validated.

    `gates`, one per row or none, are the rows' prefilters: small RE2 patterns, each matching somewhere in every text
    its row's pattern matches in (a secret's prefix, the `@` of an email). A rule set runs all its rules' gates as one
    RE2 set over a text, then only the rows whose gate matched (and the rows without one): a text with nothing
    secret- or PII-shaped costs one pass instead of a pass per pattern. A gate is short on purpose: an RE2 set has no
    fallback when its DFA runs out of memory, and a small pattern's DFA stays small whatever the text."""

    def __init__(
        self,
        table: list[tuple[str, str, Any]],
        *,
        window: int | None = None,
        starters: tuple[tuple[str, int], ...] = (),
        starter_length: int = 0,
        gates: list[str | None] | None = None,
    ) -> None:
        if gates is not None and len(gates) != len(table):
            raise ValueError("one gate (or None) per table row")
        self.table = [(label, Pattern(compile_re2(pattern)), check) for label, pattern, check in table]
        self.gates: tuple[str | None, ...] = tuple(gates) if gates is not None else (None,) * len(table)
        self.window = window if window is not None else max(max_width(pattern) for _, pattern, _ in table)
        self.starters = tuple((Pattern(compile_re2(pattern)), width) for pattern, width in starters)
        self.starter_length = starter_length
        self.whole_match = False
        """Whether a pattern's first group is ignored (operator patterns); otherwise a group, when there is one,
        is the finding (a secret's value, not the name it is assigned to)."""

    def find(self, text: str) -> list[Finding]:
        return self.scan(Subject(text))

    def scan(self, subject: Subject, rows: Collection[int] | None = None) -> list[Finding]:
        """The findings of the table's `rows` (all of them by default) in `subject`."""
        found: list[Finding] = []
        text = subject.text
        for index, (label, pattern, check) in enumerate(self.table):
            if rows is not None and index not in rows:
                continue
            group = 1 if pattern.groups and not self.whole_match else 0
            for start, end in pattern.spans(subject, group):
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
