"""A resolved set of rules for one surface: find every rule's matches, decide, and rewrite the text.

`RuleSet.find` runs each rule's detector, after one prefilter pass of all their gates (`detectors/gates.py`);
`safe_point` says how far a growing text (a stream) is final, i.e. no match can still start before it or grow past
it; `rewrite` applies the redactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from toolpolicy.guardrails.detectors import Detector, Finding
from toolpolicy.guardrails.detectors.gates import GateSet
from toolpolicy.guardrails.detectors.subject import Subject
from toolpolicy.guardrails.webhook import WebhookSettings

Action = Literal["block", "redact", "log"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    action: Action
    detector: Detector


@dataclass(frozen=True, slots=True)
class WebhookRule:
    name: str
    action: Action
    settings: WebhookSettings


@dataclass(frozen=True, slots=True)
class Hit:
    rule: Rule
    finding: Finding

    @property
    def label(self) -> str:
        return self.finding.label


class RuleSet:
    """The rules that apply to one (principal, surface, server), in config order."""

    __slots__ = ("gates", "rules", "webhooks", "window")

    def __init__(self, rules: tuple[Rule, ...], webhooks: tuple[WebhookRule, ...] = ()) -> None:
        self.rules = rules
        self.webhooks = webhooks
        self.window = max((rule.detector.window for rule in rules), default=0)
        self.gates = GateSet([rule.detector for rule in rules])
        """Built once per resolved rule set (the engine caches those per key), used on every text."""

    def __bool__(self) -> bool:
        return bool(self.rules or self.webhooks)

    def find(self, text: str, start: int = 0) -> list[Hit]:
        """Every rule's findings in `text` that begin at or after `start`, ordered by position."""
        return self.find_in(Subject(text), start)

    def find_in(self, subject: Subject, start: int = 0) -> list[Hit]:
        """`find` on an already encoded text."""
        hits = [
            Hit(rule, finding)
            for rule, rows in zip(self.rules, self.gates.rows(subject), strict=True)
            if rows
            for finding in rule.detector.scan(subject, rows)
            if finding.start >= start
        ]
        if not hits:
            return hits
        hits.sort(key=lambda hit: (hit.finding.start, -hit.finding.end))
        # One rule counts a stretch of text once: a phone-shaped run inside a card number is the card.
        kept: list[Hit] = []
        reach: dict[str, int] = {}
        for hit in hits:
            if hit.finding.start >= reach.get(hit.rule.name, -1):
                kept.append(hit)
                reach[hit.rule.name] = hit.finding.end
        return kept

    def safe_point(self, subject: Subject, floor: int) -> int:
        """The position in `text` before which no match can begin that more text could still change.

        Per rule: `len(text) - window` (a match starting earlier ends inside `text`, so it is complete); for a
        detector with starters, the first starter within its own window instead, or a starter cut off at the end."""
        size = len(subject.text)
        point = size
        for rule, starts in zip(self.rules, self.gates.starts(subject), strict=True):
            detector = rule.detector
            tail = max(floor, size - detector.window)
            if not detector.starters:
                point = min(point, tail)
                continue
            candidate = max(floor, size - detector.starter_length + 1)
            for starter, width in detector.starters if starts else ():
                found = starter.search(subject, max(floor, size - width))
                if found is not None:
                    candidate = min(candidate, found)
            point = min(point, candidate)
        return max(point, floor)


def blocking(hits: list[Hit]) -> Hit | None:
    return next((hit for hit in hits if hit.rule.action == "block"), None)


def rewrite(text: str, hits: list[Hit], start: int = 0, end: int | None = None, *, every: bool = False) -> str:
    """`text[start:end]` with each redacting hit (`every`: each hit, whatever its rule's action) replaced by
    `[REDACTED:<label>]`; overlapping hits merge, the earliest (then longest) naming the span."""
    end = len(text) if end is None else end
    pieces: list[str] = []
    cursor = start
    for hit in hits:
        if hit.rule.action != "redact" and not every:
            continue
        span_start, span_end = max(hit.finding.start, start), min(hit.finding.end, end)
        if span_end <= cursor:
            continue  # inside a span already redacted
        if span_start >= cursor:  # otherwise it overlaps the previous redaction, which now extends over it
            pieces.append(text[cursor:span_start])
            pieces.append(f"[REDACTED:{hit.label}]")
        cursor = span_end
    pieces.append(text[cursor:end])
    return "".join(pieces)
