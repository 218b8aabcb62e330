"""A 2025-era session's resource subscriptions follow its key, as a listen stream's do (`listen_resources.py`).

The session's change-feed subscriber (`notify.py`, registered on its first request) is what the key watcher
re-resolves: it drops the subscriber when the key is revoked or expires, and gives it the new grants when the
allowlist changes. An update is delivered only while the subscriber still hears from the feed and sees the server,
and each such change of the key releases what the session may no longer see (so the upstream reference counts drop
as soon as the watcher notices, not when the session ends). No check is added per update beyond two lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_hub.notify import ChangeFeed, Subscriber
from mcp_hub.relay.subscriptions import Deliver


@dataclass(frozen=True)
class KeyBound:
    feed: ChangeFeed
    subscriber: Subscriber

    def sees(self, server: str) -> bool:
        """Whether the session's key is still valid and may still see `server`."""
        return self.subscriber in self.feed and self.subscriber.caller.sees_server(server)

    def guarded(self, server: str, deliver: Deliver) -> Deliver:
        async def deliver_while_seen(uri: str) -> None:
            if self.sees(server):
                await deliver(uri)

        return deliver_while_seen
