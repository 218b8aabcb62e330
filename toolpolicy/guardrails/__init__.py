"""Guardrails: content rules on what goes to a model or tool and what comes back (issue 15).

One entry point, `Guardrails`, built from `settings.guardrails`; `Guardrails.scan(principal, surface, ...)` gives a
`Scan` that redacts, blocks (`GuardrailBlocked`) and logs, on whole texts, JSON bodies and streams, and asks
`webhook` rules' services (`Scan.remote`) through an injected `WebhookPost`. Transport-free: the LLM proxy and the
MCP hub call it at their edges, `isthmus` gives it its HTTP client.
"""

from toolpolicy.errors import GuardrailBlocked
from toolpolicy.guardrails.engine import Emit, Guardrails, Scan
from toolpolicy.guardrails.settings import SURFACES, GuardrailRefs, GuardrailSettings, Surface, guardrail_problems
from toolpolicy.guardrails.stream import StreamScanner
from toolpolicy.guardrails.webhook import WebhookError, WebhookPost, WebhookSettings

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
    "WebhookError",
    "WebhookPost",
    "WebhookSettings",
    "guardrail_problems",
]
