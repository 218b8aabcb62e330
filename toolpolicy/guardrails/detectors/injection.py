"""Prompt injection: instruction-like text where data is expected (tool outputs, retrieved documents).

A heuristic, not a classifier: phrases that address the model rather than inform it ("ignore previous
instructions", "you are now in developer mode", chat-template control tokens, requests to reveal the system prompt
or to hide something from the user). Meant for `log` or `block` on `tool_output`; every pattern is RE2.
"""

from __future__ import annotations

from toolpolicy.guardrails.detectors.base import PatternDetector

_S = r"[\s,]{1,4}"
INJECTION_PATTERNS = [
    rf"(?i)\b(?:ignore|disregard|forget|override){_S}(?:all{_S}|any{_S}|the{_S}|your{_S}|of{_S}|everything{_S}){{0,3}}"
    rf"(?:previous|prior|above|earlier|preceding|system|original){_S}(?:instructions|prompts?|messages|rules|"
    r"guidelines|directions|context)\b",
    rf"(?i)\byou{_S}are{_S}now{_S}(?:in{_S})?(?:developer|jailbreak|dan|god|unrestricted|admin){_S}mode\b",
    rf"(?i)\b(?:enter|enable|activate|switch{_S}to){_S}(?:developer|jailbreak|dan|god|unrestricted){_S}mode\b",
    rf"(?i)\b(?:reveal|print|show|output|repeat|leak){_S}(?:me{_S})?(?:your|the){_S}(?:system{_S}prompt|hidden"
    rf"{_S}instructions|initial{_S}instructions|developer{_S}message)\b",
    rf"(?i)\b(?:do{_S}not|don't|never){_S}(?:tell|inform|alert|let){_S}(?:the{_S})?user\b",
    rf"(?i)\bnew{_S}(?:system{_S})?instructions\s{{0,4}}:",
    r"<\|im_start\|>|<\|system\|>|\[INST\]|<<SYS>>|(?i:</?system>)",
]


# Each pattern's gate, in order: a word every match of it contains (see `PatternDetector`).
INJECTION_GATES: list[str | None] = [
    r"(?i:ignore|disregard|forget|override)",
    r"(?i:mode)",
    r"(?i:mode)",
    r"(?i:prompt|instructions|message)",
    r"(?i:user)",
    r"(?i:instructions)",
    r"<\|im_start\|>|<\|system\|>|\[INST\]|<<SYS>>|(?i:</?system>)",
]


def injection_detector(rule: str) -> PatternDetector:
    table: list[tuple[str, str, object]] = [(rule, pattern, None) for pattern in INJECTION_PATTERNS]
    return PatternDetector(table, gates=INJECTION_GATES)
