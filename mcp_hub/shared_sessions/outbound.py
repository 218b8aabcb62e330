"""Server-to-client messages of a session, sent from the replica that holds the stream they belong on.

Every message the hub's server writes for a 2025-era session passes through `RoutedWrite` on its way to the
session's transport. The transport would put it on one SSE stream: a response on its request's stream, a message
related to a request on that request's stream, anything else (list changes, resource updates, requests without a
related one) on the standalone GET stream. When that stream is open here, the message goes on as usual. When it is
not, and another replica holds it, the message is published to that replica, which writes it into its own
transport (`SharedSessions.deliver_out`). When no replica holds it (or the one named no longer listens), it goes
into this replica's transport, which stores it for a client that resumes later and drops it otherwise, as the SDK
does for one replica.

A server-initiated request carries this replica in its id (`dispatcher.py`), so the client's answer, posted to any
replica, comes back here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mcp.client._transport import WriteStream
from mcp.server.streamable_http import GET_STREAM_KEY, StreamableHTTPServerTransport
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCError, JSONRPCResponse

from mcp_hub.streams import WriteWrapper

Route = Callable[[str, str, SessionMessage], Awaitable[bool]]
"""`(session_id, stream, message)`: publish it to the replica holding that stream; False if none took it."""


def stream_of(item: SessionMessage) -> str:
    """The SSE stream the SDK's transport writes `item` on (its `message_router`'s rule)."""
    message = item.message
    if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
        return str(message.id)
    metadata = item.metadata
    if isinstance(metadata, ServerMessageMetadata) and metadata.related_request_id is not None:
        return str(metadata.related_request_id)
    return GET_STREAM_KEY


class RoutedWrite(WriteWrapper):
    """The write stream of one session's server, routing what belongs on another replica's stream there."""

    def __init__(
        self,
        inner: WriteStream[SessionMessage],
        transport: StreamableHTTPServerTransport,
        session_id: str,
        route: Route,
    ) -> None:
        super().__init__(inner)
        self.transport = transport
        self.session_id = session_id
        self.route = route

    async def send(self, item: SessionMessage, /) -> None:
        stream = stream_of(item)
        # The SDK keeps the streams open on this replica in `_request_streams` (no public view): open here, no lookup.
        if stream not in self.transport._request_streams and await self.route(self.session_id, stream, item):
            return
        await self._inner.send(item)
