"""Upstream log notices (`notifications/message`), relayed to the client whose call they were sent during.

- A 2025-era upstream's log level applies to its whole connection, which every client shares: the hub sets it to
  `debug` once per connection and filters per client. A 2025-era client's `logging/setLevel` answers `{}` and sets
  the level of its own session only; a session that never set one gets everything (as from a server that was never
  told a level).
- A 2026-07-28 upstream only logs for requests that opt in: the hub's client opts in at `debug` on every request.
  A 2026-07-28 client opts in per request (`_meta`), and gets what it asked for.
- A notice goes to its call's client only, written on that call's stream before the call's result is.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.connection import Connection, allowed_log_levels

from mcp_hub.relay.calls import Downstream

LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
UPSTREAM_LEVEL: types.LoggingLevel = "debug"
"""What the hub asks of every upstream, so it can filter per client."""


class LogLevels:
    """The level each 2025-era client session asked for with `logging/setLevel`."""

    def __init__(self) -> None:
        self._levels: dict[int, types.LoggingLevel] = {}

    def __len__(self) -> int:
        return len(self._levels)

    def set(self, connection: Connection, level: types.LoggingLevel) -> None:
        key = id(connection)
        if key not in self._levels:
            connection.exit_stack.callback(self._levels.pop, key, None)
        self._levels[key] = level

    def set_named(self, connection: Connection, level: str) -> None:
        """`set` from a level named in the session's shared record or another replica's message; unknown: ignored."""
        if level in LEVELS:
            self.set(connection, level)

    def allows(self, downstream: Downstream, level: types.LoggingLevel) -> bool:
        if downstream.modern:
            return level in allowed_log_levels(downstream.protocol_version, downstream.meta)
        wanted = self._levels.get(downstream.session_key) if downstream.session_key is not None else None
        return wanted is None or LEVELS.index(level) >= LEVELS.index(wanted)


def log_notice(params: dict[str, Any] | None) -> types.LoggingMessageNotification | None:
    """The notice as the hub relays it (the upstream's own fields), or None when it is not a valid one."""
    try:
        parsed = types.LoggingMessageNotificationParams.model_validate(params or {}, by_name=False)
    except ValueError:
        return None
    return types.LoggingMessageNotification(params=parsed)
