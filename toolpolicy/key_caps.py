"""How much of the MCP hub's shared capacity one virtual key may hold at once.

The hub has three pools every key draws from: legacy (2025-era) `/mcp` sessions (`mcp.max_sessions` in all), open
`subscriptions/listen` streams, and Code Mode's sandbox workers (`code_mode.workers`). Without a share per key, one
busy or runaway client could hold all of a pool and lock every other key out. `mcp.per_key` sets each key's share;
a key's own `mcp_rate_limit.concurrency` replaces the shares it names.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class McpKeyCaps(BaseModel):
    """What one virtual key may hold at once of the MCP hub's shared capacity (the `mcp.per_key` block)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    sessions: int = Field(default=100, ge=1)
    """Legacy (2025-era) `/mcp` sessions one key may hold open; the request that would open one more gets 429.
    A session is held until the client deletes it or it idles out (`mcp.session_idle_timeout`)."""
    listen_streams: int = Field(default=20, ge=1)
    """`subscriptions/listen` streams one key may hold open; one more is refused with JSON-RPC error -32029."""
    code_mode_runs: int | None = Field(default=None, ge=1)
    """Code Mode runs of one key at once (waiting for a sandbox worker or running); one more is a tool error.
    Null: half of `code_mode.workers`, at least one, so other keys keep workers."""

    def code_mode_runs_of(self, workers: int) -> int:
        """The Code Mode share, given the sandbox pool's size."""
        return self.code_mode_runs if self.code_mode_runs is not None else max(1, workers // 2)


class McpKeyCapOverrides(BaseModel):
    """One key's own shares of the MCP hub (`mcp_rate_limit.concurrency`); each one set replaces `mcp.per_key`'s."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    sessions: int | None = Field(default=None, ge=1)
    """Legacy `/mcp` sessions this key may hold open; null follows `mcp.per_key.sessions`."""
    listen_streams: int | None = Field(default=None, ge=1)
    """`subscriptions/listen` streams this key may hold open; null follows `mcp.per_key.listen_streams`."""
    code_mode_runs: int | None = Field(default=None, ge=1)
    """Code Mode runs of this key at once; null follows `mcp.per_key.code_mode_runs`."""
