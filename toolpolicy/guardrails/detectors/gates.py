"""One prefilter pass per text for a whole rule set: every detector row's gate (see `PatternDetector`) and every
stream starter in one RE2 set.

    gates = GateSet([rule.detector for rule in rules])       # once per resolved rule set
    rows = gates.rows(subject)                                # per text: per detector, the rows to run
    findings = detector.scan(subject, rows[i])
    gates.starts(subject)                                     # per detector: whether a starter occurs at all

A row without a gate always runs (an operator's regex: its pattern is the operator's, of any size, and a set of
large patterns can exhaust RE2's DFA memory, where a set has no slower fallback and would answer "no match").
"""

from __future__ import annotations

from collections.abc import Sequence

import re2  # type: ignore[import-untyped]

from toolpolicy.guardrails.detectors.base import Detector
from toolpolicy.guardrails.detectors.subject import Subject

STARTER = -1
"""The row index that stands for a detector's stream starters in the set."""
GATE_MEMORY = 64 << 20
"""RE2's memory budget for the set (its DFA cache): far above what a few dozen short gates can use."""


class GateSet:
    """The gates of some detectors, matched together."""

    __slots__ = ("_always", "_owners", "_set")

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self._always: list[set[int]] = [
            {row for row, gate in enumerate(detector.gates) if gate is None} for detector in detectors
        ]
        self._owners: list[tuple[int, int]] = []
        """Set index -> (detector index, row index, or STARTER)."""
        options = re2.Options()
        options.max_mem = GATE_MEMORY
        options.log_errors = False
        gates = re2.Set.SearchSet(options)
        for which, detector in enumerate(detectors):
            for row, gate in enumerate(detector.gates):
                if gate is not None:
                    gates.Add(gate)
                    self._owners.append((which, row))
            for starter, _ in detector.starters:
                gates.Add(starter.compiled.pattern)
                self._owners.append((which, STARTER))
        self._set = None
        if self._owners:
            gates.Compile()
            self._set = gates._set  # RE2::Set itself: `Match(bytes)` -> the indices of the gates that matched

    def _matched(self, subject: Subject) -> list[int]:
        """The set's answer for `subject`, asked once per text (a stream's scan asks for rows and starts)."""
        if self._set is None:
            return []
        if subject.gated is None or subject.gated[0] is not self:
            subject.gated = (self, self._set.Match(subject.data))
        return subject.gated[1]

    def rows(self, subject: Subject) -> list[set[int]]:
        """Per detector, the rows worth running on `subject`: those whose gate matched, and those without a gate."""
        chosen = [set(always) for always in self._always]
        for index in self._matched(subject):
            which, row = self._owners[index]
            if row != STARTER:
                chosen[which].add(row)
        return chosen

    def starts(self, subject: Subject) -> list[bool]:
        """Per detector, whether one of its stream starters occurs anywhere in `subject` (if not, none needs
        looking for)."""
        found = [False] * len(self._always)
        for index in self._matched(subject):
            which, row = self._owners[index]
            if row == STARTER:
                found[which] = True
        return found
