"""`resourceSubscriptions` of a 2026-07-28 `subscriptions/listen` stream: which URIs it gets, and their updates.

Each URI is named as the client's endpoint names resources (`isthmus://<server>/<uri>` on `/mcp`, the server's own URI
on `/mcp/<server>`) and located the way `resources/subscribe` and `resources/read` locate it. The stream then holds it
in the relay's reference counts, shared with 2025-era sessions (`relay/subscriptions.py`), until it closes. A URI
the key may not see, or one its upstream refused, is left out of the acknowledgement and never delivered (the
spec's "honored subset"); an update reaches the stream only while its key is valid and still sees the server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence

from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent

from mcp_hub.access import Caller
from mcp_hub.notify import ChangeFeed, Subscriber
from mcp_hub.relay import Relay
from mcp_hub.relay.subscriptions import Deliver
from toolpolicy.errors import GatewayError, InvalidRequest

logger = logging.getLogger(__name__)

MAX_URIS = 256
"""URIs one listen stream may name; more is refused (each one may subscribe the hub upstream)."""

Locate = Callable[[Caller, str], tuple[str, str]]
"""The (server, upstream URI) a caller's URI names; raises a GatewayError when the caller may not see it."""


class ResourceSubscriber:
    def __init__(self, relay: Relay, locate: Locate, feed: ChangeFeed) -> None:
        self.relay = relay
        self.locate = locate
        self.feed = feed

    async def hold(
        self, holder: Hashable, subscriber: Subscriber, uris: Sequence[str], put: Callable[[ServerEvent], None]
    ) -> list[str]:
        """Subscribe `holder` to each of `uris` it may see; returns the URIs honored, as the client named them."""
        unique = list(dict.fromkeys(uris))
        if len(unique) > MAX_URIS:
            raise InvalidRequest(f"resourceSubscriptions names {len(unique)} URIs; at most {MAX_URIS} per stream")
        honored: list[str] = []
        for named in unique:
            try:
                server, uri = self.locate(subscriber.caller, named)
            except GatewayError:
                continue  # unknown, or not this key's: not honored, and nothing said about which
            try:
                await self.relay.hold(holder, server, uri, named, self._deliver_to(subscriber, server, put))
            except MCPError as exc:
                logger.info("MCP server %r: a listen stream's subscription to %r failed: %s", server, uri, exc.message)
                continue
            honored.append(named)
        return honored

    def release_soon(self, holder: Hashable) -> None:
        self.relay.release_soon(holder)

    def _deliver_to(self, subscriber: Subscriber, server: str, put: Callable[[ServerEvent], None]) -> Deliver:
        async def deliver(named: str) -> None:
            # The key watcher drops a revoked key's subscriber and replaces its caller when the key's grants change.
            if subscriber in self.feed and subscriber.caller.sees_server(server):
                put(ResourceUpdated(named))

        return deliver
