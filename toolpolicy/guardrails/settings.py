"""The `guardrails:` configuration: named content rules, and the fields that attach them to keys, teams, customers and
MCP servers. The shape is the contract of issue 15; `guardrail_problems` checks the cross-references."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from toolpolicy.guardrails.webhook import WebhookSettings

Surface = Literal["input", "output", "tool_input", "tool_output"]
SURFACES: tuple[Surface, ...] = ("input", "output", "tool_input", "tool_output")
PII_ENTITIES = ("email", "credit_card", "phone", "iban", "ssn", "ip_address")
_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class GuardrailSettings(_Model):
    """One named content rule: what it detects, what it does on a hit, and where it applies."""

    name: str
    """The rule's name: in `guardrails:`/`skip_guardrails:` lists, error messages, audit records and metrics."""
    detect: Literal["secrets", "pii", "regex", "injection", "webhook"]
    """`secrets` (API keys, tokens, private keys), `pii` (see `entities`), `regex` (see `patterns`), `injection`
    (instruction-like text, meant for tool outputs) or `webhook` (an external service's verdict, see `webhook`)."""
    action: Literal["block", "redact", "log"]
    """`block` refuses the text, `redact` replaces each match with `[REDACTED:<entity or rule>]`, `log` only
    records the hit (the trial mode)."""
    default: bool = False
    """Applies to every key, unless the key, its team or its customer lists it under `skip_guardrails`."""
    entities: list[str] | None = None
    """For `pii`: which entities to find, of email, credit_card, phone, iban, ssn, ip_address (default: all)."""
    patterns: list[str] | None = Field(default=None, min_length=1, max_length=64)
    """For `regex`: RE2 patterns (linear-time: no backreferences or lookaround), each at most 1,000 characters."""
    apply_to: list[Surface] = Field(default_factory=lambda: list(SURFACES), min_length=1)
    """The surfaces it applies to: `input`, `output`, `tool_input`, `tool_output` (default: all four)."""
    webhook: WebhookSettings | None = None
    """For `webhook`: the service, its request shape, timeout and `on_error` (fail open or closed)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @field_validator("entities")
    @classmethod
    def _entities(cls, value: list[str] | None) -> list[str] | None:
        unknown = [entity for entity in value or () if entity not in PII_ENTITIES]
        if unknown:
            raise ValueError(f"unknown PII entity {unknown[0]!r}; known: {', '.join(PII_ENTITIES)}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> GuardrailSettings:
        if (self.detect == "webhook") != (self.webhook is not None):
            raise ValueError("detect: webhook needs `webhook` (and `webhook` is only for detect: webhook)")
        if self.detect == "webhook" and self.action == "redact":
            raise ValueError("a webhook gives a verdict, not spans to redact: use action block or log")
        if self.detect == "regex" and not self.patterns:
            raise ValueError("detect: regex needs `patterns`")
        if self.detect != "regex" and self.patterns is not None:
            raise ValueError("`patterns` is only for detect: regex")
        if self.detect != "pii" and self.entities is not None:
            raise ValueError("`entities` is only for detect: pii")
        if self.detect == "regex":
            from toolpolicy.guardrails.detectors.patterns import compile_problem

            for index, pattern in enumerate(self.patterns or ()):
                problem = compile_problem(pattern)
                if problem is not None:
                    raise ValueError(f"patterns[{index}]: {problem}")
        return self


class GuardrailRefs(_Model):
    """The two fields keys, teams and customers take (mixed into their settings models)."""

    guardrails: list[str] = Field(default_factory=list, max_length=64)
    """Guardrail rules (by name) applied on top of the `default: true` ones."""
    skip_guardrails: list[str] = Field(default_factory=list, max_length=64)
    """Guardrail rules (by name) not applied, even `default: true` ones or ones a team or customer lists."""


def guardrail_problems(settings: Any) -> list[str]:
    """Duplicate rule names, and references to rules that do not exist, each prefixed with its config path: from
    customers, teams and virtual keys (`guardrails`, `skip_guardrails`) and MCP servers (`guardrails`)."""
    rules: list[GuardrailSettings] = settings.guardrails
    holders = [
        (f"{field}[{index}]", holder)
        for field in ("customers", "teams", "virtual_keys")
        for index, holder in enumerate(getattr(settings, field))
    ]
    servers: Mapping[str, Any] = settings.mcp_servers
    problems: list[str] = []
    names: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.name in names:
            problems.append(f"guardrails[{index}].name: duplicate rule name {rule.name!r}")
        names.add(rule.name)
    for path, holder in holders:
        for field in ("guardrails", "skip_guardrails"):
            problems.extend(
                f"{path}.{field}: no guardrail rule named {name!r} in guardrails"
                for name in getattr(holder, field)
                if name not in names
            )
    for server, settings in servers.items():
        problems.extend(
            f"mcp_servers.{server}.guardrails: no guardrail rule named {name!r} in guardrails"
            for name in settings.guardrails
            if name not in names
        )
    return problems
