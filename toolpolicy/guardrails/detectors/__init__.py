"""The detectors by `detect:` name, built from a rule's settings."""

from __future__ import annotations

from toolpolicy.guardrails.detectors.base import Detector, Finding, PatternDetector
from toolpolicy.guardrails.detectors.injection import injection_detector
from toolpolicy.guardrails.detectors.patterns import regex_detector
from toolpolicy.guardrails.detectors.pii import pii_detector
from toolpolicy.guardrails.detectors.secrets import secrets_detector
from toolpolicy.guardrails.settings import GuardrailSettings

__all__ = ["Detector", "Finding", "PatternDetector", "detector_for"]


def detector_for(rule: GuardrailSettings) -> Detector | None:
    """The rule's in-process detector (None for `webhook`, which the engine asks asynchronously)."""
    if rule.detect == "secrets":
        return secrets_detector()
    if rule.detect == "pii":
        return pii_detector(rule.entities)
    if rule.detect == "regex":
        return regex_detector(rule.name, rule.patterns or [])
    if rule.detect == "injection":
        return injection_detector(rule.name)
    return None
