"""Operator regex rules, compiled with RE2: linear time whatever the pattern, so a rule can never hang the gateway.

A pattern RE2 cannot run in linear time (backreferences, lookaround) is a config error naming it. The stream window
is the pattern's longest match, read from its parse tree; a pattern with no upper bound gets `UNBOUNDED_WINDOW`.
"""

from __future__ import annotations

import re2  # type: ignore[import-untyped]

from toolpolicy.guardrails.detectors.base import PatternDetector, compile_re2

MAX_PATTERN = 1000


def compile_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a rule (None when it can)."""
    if not pattern or len(pattern) > MAX_PATTERN:
        return f"a pattern is 1-{MAX_PATTERN} characters"
    try:
        compile_re2(pattern)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return f"not a valid RE2 pattern ({detail}); RE2 has no backreferences or lookaround"
    return None


def regex_detector(rule: str, patterns: list[str]) -> PatternDetector:
    """Each pattern's matches, labelled with the rule's name (what `[REDACTED:<rule>]` shows)."""
    table: list[tuple[str, str, object]] = [(rule, pattern, None) for pattern in patterns]
    detector = PatternDetector(table)
    # An operator's capture group is not a value to single out: the whole match is the finding.
    detector.whole_match = True
    return detector
