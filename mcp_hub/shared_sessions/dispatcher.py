"""The JSON-RPC dispatcher of a shared session: its own requests to the client carry this replica in their ids.

Each replica serving a session sends its server-initiated requests (sampling, elicitation, roots, ping) with ids
it mints; the SDK mints 1, 2, 3… per connection, so two replicas would send the same ids to one client and could
not tell whose answer came back. Here the ids are strings, `<replica>.<n>`: the answer, posted to any replica, is
sent on to the replica named in it (`SharedSessions.owner_of`). JSON-RPC allows string ids and MCP clients echo
them unchanged.
"""

from __future__ import annotations

from typing import Any

from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext

ID_SEPARATOR = "."


class ReplicaDispatcher(JSONRPCDispatcher[TransportContext]):
    def __init__(self, *args: Any, replica: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replica = replica

    # The SDK has no option for the ids it mints; this is its one place that mints them.
    def _allocate_id(self) -> str:  # type: ignore[override]
        self._next_id += 1
        return f"{self.replica}{ID_SEPARATOR}{self._next_id}"
