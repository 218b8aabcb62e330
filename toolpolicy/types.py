"""The values the governance core decides on: who calls (Principal) and what they reach (Target)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from toolpolicy.globs import GlobSet


@dataclass(frozen=True, slots=True)
class AgentPolicy:
    """A key's agent mode: which hub tools its model calls are offered, and how the gateway runs them."""

    tools: GlobSet
    """Globs over `<server>__<tool>`, within the key's `mcp` allowlist."""
    max_steps: int = 8
    """Model calls per request at most."""
    parallel: bool = True
    """Whether one turn's tool calls run concurrently."""


@dataclass(frozen=True, slots=True)
class OAuthIdentity:
    """How a caller signed in when it presented an OAuth access token rather than the key itself."""

    client_id: str
    """The OAuth client (a registered id, or the URL of its metadata document; an external token's `azp`)."""
    subject: str
    """The token's `sub`: the person or workload behind it."""
    issuer: str
    """Who issued the token: this gateway, or a trusted IdP."""


@dataclass(frozen=True, slots=True)
class Principal:
    """A resolved, valid virtual key with its place in the customer -> team -> key hierarchy."""

    key_id: str
    key_name: str
    team: str | None = None
    customer: str | None = None
    team_id: str | None = None
    customer_id: str | None = None
    """The customer the key belongs to, directly or through its team."""
    models: GlobSet = field(default_factory=lambda: GlobSet(()))
    mcp: dict[str, GlobSet] = field(default_factory=dict)
    expires_at: datetime | None = None
    code_mode: bool | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    """Budgets and rate limits of the key, its team and its customer, as stored (enforced by the limit policies)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    agent: AgentPolicy | None = None
    """Agent mode, when the key has it."""
    guardrails: tuple[str, ...] = ()
    """Guardrail rules the key, its team and its customer list (on top of the `default: true` ones)."""
    skip_guardrails: tuple[str, ...] = ()
    """Guardrail rules the key, its team or its customer skip."""
    cache: bool | dict[str, Any] | None = None
    """The `cache` setting that applies to the key: its own, else its team's, else its customer's, as stored (null
    or true follow the gateway's cache, false is off, `{ttl: s}`)."""
    oauth: OAuthIdentity | None = None
    """Set when the key's policy applies through an OAuth token (`toolpolicy.oauth`): its client and subject."""

    governed: bool = field(init=False, repr=False, compare=False)
    """Whether any rate limit or budget applies (key, team or customer): else admission plans nothing, and the
    request's token estimate has no use there. Worked out once, when the key is resolved, not twice a request."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "governed", any(self.limits.values()))


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """An LLM model addressed as `provider/model` (or an alias name, with `provider` empty)."""

    provider: str
    model: str
    name: str = field(init=False, repr=False, compare=False)
    """`provider/model` (or the bare model with no provider): a request reads it a few times (routing, its trace,
    its audit row), so it is built once, with the target, not at each read."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"{self.provider}/{self.model}" if self.provider else self.model)

    @classmethod
    def parse(cls, name: str) -> ModelTarget:
        # Parsed once per name: a request parses its model three times on the way (route resolution, allowlist,
        # admission), and targets are immutable, so one object serves every request that names the same model.
        target = _PARSED.get(name)
        if target is None or cls is not ModelTarget:
            provider, sep, model = name.partition("/")
            target = cls(provider, model) if sep else cls("", name)
            if cls is ModelTarget and len(_PARSED) < MAX_PARSED_TARGETS:  # names come from requests: bounded
                _PARSED[name] = target
        return target

    @property
    def kind(self) -> str:
        return "model"


@dataclass(frozen=True, slots=True)
class ToolTarget:
    """An MCP tool of one upstream server."""

    server: str
    tool: str

    @property
    def name(self) -> str:
        return f"{self.server}/{self.tool}"

    @property
    def kind(self) -> str:
        return "tool"


Target = ModelTarget | ToolTarget

MAX_PARSED_TARGETS = 4096
"""Model names `ModelTarget.parse` keeps parsed; names past that (a caller making them up) are parsed each time."""
_PARSED: dict[str, ModelTarget] = {}
