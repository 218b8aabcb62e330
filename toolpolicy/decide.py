"""The one decision API both halves call: may this principal reach this target?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from toolpolicy.errors import ExpiredKey, GatewayError, ModelNotAllowed, ToolNotAllowed
from toolpolicy.types import ModelTarget, Principal, Target, ToolTarget


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow, or a typed denial that carries its reason, HTTP status, OpenAI error type and JSON-RPC code."""

    denial: GatewayError | None = None

    @property
    def allowed(self) -> bool:
        return self.denial is None

    def raise_if_denied(self) -> None:
        if self.denial is not None:
            raise self.denial


ALLOW = Decision()


def tool_allowed(principal: Principal, server: str, tool: str) -> bool:
    """Deny by default: a server the key does not name gives nothing."""
    globs = principal.mcp.get(server)
    return globs is not None and globs.matches(tool)


def authorize(principal: Principal, target: Target, *, now: datetime | None = None) -> Decision:
    """Check the key's state and allowlists against one model or tool."""
    if principal.expires_at is not None and principal.expires_at <= (now or datetime.now(UTC)):
        return Decision(ExpiredKey(f"the API key {principal.key_name!r} has expired"))
    if isinstance(target, ModelTarget):
        if not principal.models.matches(target.name):
            return Decision(
                ModelNotAllowed(f"key {principal.key_name!r} may not use model {target.name!r}", param="model")
            )
        return ALLOW
    if isinstance(target, ToolTarget):
        if not tool_allowed(principal, target.server, target.tool):
            return Decision(
                ToolNotAllowed(f"key {principal.key_name!r} may not call tool {target.tool!r} of {target.server!r}")
            )
        return ALLOW
    raise TypeError(f"unknown target type {type(target).__name__}")
