"""Scanning a text that arrives in pieces (a streamed answer), without waiting for its end.

Each `feed` scans what is held back plus the new piece and lets out everything before the safe point (see
`RuleSet.safe_point`): text no match can still begin in, and any match that began there, whole. The rest waits for
the next piece, so a value split across any number of chunks is found as if it came in one. Emitted text is never
scanned again: a few characters of it are kept only as context, for `\\b` at the boundary. `flush` ends the text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolpolicy.guardrails.detectors.subject import Subject
from toolpolicy.guardrails.rules import rewrite

if TYPE_CHECKING:
    from toolpolicy.guardrails.engine import Scan

CONTEXT = 16
"""Characters of already emitted text kept in front of the next scan, so word boundaries read correctly."""
STEP = 64
"""Characters gathered between scans: each scan reads the whole held-back window, so scanning on every token would
cost a window per token; text goes out in steps of this much instead (about 16 tokens)."""


class StreamScanner:
    """One text's stream scanner; `GuardrailBlocked` comes out of `feed` or `flush` when a blocking rule matched."""

    __slots__ = ("_context", "_pending", "_scan", "_step", "_unscanned")

    def __init__(self, scan: Scan, *, step: int = STEP) -> None:
        self._scan = scan
        self._step = step
        self._context = ""
        self._pending = ""
        self._unscanned = 0

    @property
    def held(self) -> int:
        """Characters received but not yet let out."""
        return len(self._pending)

    def feed(self, piece: str) -> str:
        """The text that can go out now (possibly empty), redacted."""
        if not piece:
            return ""
        self._unscanned += len(piece)
        if self._unscanned < self._step:
            self._pending += piece
            return ""
        self._unscanned = 0
        subject = Subject(self._context + self._pending + piece)
        floor = len(self._context)
        return self._emit(subject, floor, self._scan.rules.safe_point(subject, floor))

    def flush(self) -> str:
        """Everything still held, redacted: the text has ended."""
        if not self._pending:
            return ""
        subject = Subject(self._context + self._pending)
        return self._emit(subject, len(self._context), len(subject.text))

    def _emit(self, subject: Subject, floor: int, safe: int) -> str:
        text = subject.text
        if safe <= floor:
            self._pending = text[floor:]
            return ""
        hits = []
        for hit in self._scan.rules.find_in(subject, floor):  # by position
            # A match that began before the safe point is complete: it goes out whole, and so does any match that
            # overlaps it (another rule's), so no part of one goes out unscanned.
            if hit.finding.start < safe:
                hits.append(hit)
                safe = max(safe, hit.finding.end)
        if hits:
            self._scan.record(hits)  # raises on a block, before anything more is let out
        self._pending = text[safe:]
        self._context = text[max(0, safe - CONTEXT) : safe]
        return rewrite(text, hits, floor, safe) if hits else text[floor:safe]
