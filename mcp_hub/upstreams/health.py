"""An upstream's health: its state, since when, and the last error it had."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

logger = logging.getLogger(__name__)

State = Literal["connecting", "ready", "degraded", "down", "disabled"]
"""`connecting`: first attempt or reconnecting; `ready`: connected and listed; `degraded`: connected, but its last
re-listing failed (the previous lists are kept); `down`: not connected, waiting to retry; `disabled`: by config, or
at run time through the admin API (until enabled again or restarted)."""


@dataclass
class Health:
    server: str
    state: State = "connecting"
    last_error: str | None = None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    connects: int = 0
    """Successful connections so far: more than one means it was restarted or reconnected."""
    failures: int = 0
    """Connection attempts that failed or connections that were lost."""
    protocol_version: str | None = None
    server_info: str | None = None
    stdout_noise: int = 0
    """Lines a stdio server wrote to stdout that were not JSON-RPC (discarded)."""

    def enter(self, state: State, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
        if state == self.state:
            return
        log = logger.warning if state in ("down", "degraded") else logger.info
        log("MCP server %r: %s -> %s%s", self.server, self.state, state, f" ({error})" if error else "")
        self.state = state
        self.since = datetime.now(UTC)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since.isoformat(),
            "last_error": self.last_error,
            "connects": self.connects,
            "failures": self.failures,
            "protocol_version": self.protocol_version,
            "server_info": self.server_info,
            "stdout_noise_lines": self.stdout_noise,
        }
