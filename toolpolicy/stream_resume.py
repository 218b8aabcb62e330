"""How the MCP hub lets a 2025-era client resume a Streamable HTTP stream that broke off (SEP-1699).

Each legacy session keeps its most recent SSE events in memory, so a client that reconnects with `Last-Event-ID`
gets what it missed. The buffer lives in the replica that serves the session: a resumed stream must land on the
same replica (sticky sessions), as every request of a legacy session must anyway.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class McpStreamResume(BaseModel):
    """Replay of missed SSE events to a reconnecting 2025-era client (the `mcp.resume` block)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    enabled: bool = True
    """Send each SSE stream a priming event and keep recent events for replay; off, a broken stream is lost."""
    retry_ms: int = Field(default=1000, ge=0)
    """Milliseconds the `retry` field of the priming event asks a client to wait before it reconnects."""
    max_events: int = Field(default=256, ge=1)
    """Events one session keeps for replay; the oldest are dropped past this."""
    max_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Bytes of JSON one session keeps for replay; the oldest events are dropped past this."""
