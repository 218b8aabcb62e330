"""Guardrails: content rules on what goes to a model or tool and what comes back (issue 15).

One entry point, `Guardrails`, built from `settings.guardrails`; `Guardrails.scan(principal, surface, ...)` gives a
`Scan` that redacts, blocks (`GuardrailBlocked`) and logs, on whole texts, JSON bodies and streams. Transport-free:
the LLM proxy and the MCP hub call it at their edges.
"""

from toolpolicy.errors import GuardrailBlocked
from toolpolicy.guardrails.engine import Emit, Guardrails, Scan
from toolpolicy.guardrails.settings import SURFACES, GuardrailRefs, GuardrailSettings, Surface, guardrail_problems
from toolpolicy.guardrails.stream import StreamScanner

__all__ = [
    "SURFACES",
    "Emit",
    "GuardrailBlocked",
    "GuardrailRefs",
    "GuardrailSettings",
    "Guardrails",
    "Scan",
    "StreamScanner",
    "Surface",
    "guardrail_problems",
]
