"""Resource subscriptions of both eras, reference-counted per (upstream, URI).

A holder is a 2025-era session (`resources/subscribe`, `resources/unsubscribe`) or a 2026-07-28 `subscriptions/listen`
stream (`resourceSubscriptions`). The first holder to want a URI subscribes the hub upstream; the last one to leave
(unsubscribing, its session ending, its stream closing) unsubscribes it. An upstream's resource update goes to the
holders that want that URI, under the URI each of them asked with (on `/mcp`, the `isthmus://` form). After an
upstream reconnects, the hub subscribes it again to every URI some holder still wants.

A session's subscriptions are bound to its key (`key_bound.py`): once the key is revoked or expires, or no longer
sees a server, the session gets no more updates of that server's resources and gives back what it held there.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from mcp.server.connection import Connection

from mcp_hub.relay.calls import DELIVERY_TIMEOUT

if TYPE_CHECKING:
    from mcp_hub.relay.key_bound import KeyBound

logger = logging.getLogger(__name__)

Upstream = Callable[[str, str, bool], Awaitable[None]]
"""`(server, uri, subscribe)`: (un)subscribe the hub upstream; raises what the upstream answered."""
Deliver = Callable[[str], Awaitable[None]]
"""Tell one holder that the resource it knows as this URI changed."""


class Subscriptions:
    def __init__(self) -> None:
        self._wanted: dict[tuple[str, str], dict[Hashable, tuple[Deliver, str]]] = {}
        """(server, upstream URI) -> holder -> (how to tell it, the URI it subscribed with)."""
        self._lock = anyio.Lock()
        self._tg: TaskGroup | None = None

    def attach(self, tg: TaskGroup | None) -> None:
        """Where deliveries and the clean-up of ended holders run (the hub's lifetime)."""
        self._tg = tg

    def uris(self, server: str) -> list[str]:
        return sorted(uri for (name, uri), holders in self._wanted.items() if name == server and holders)

    def holders(self, server: str, uri: str) -> int:
        """How many holders want `uri` of `server` now."""
        return len(self._wanted.get((server, uri), {}))

    async def subscribe(
        self,
        connection: Connection,
        server: str,
        uri: str,
        named: str,
        upstream: Upstream,
        key: KeyBound | None = None,
    ) -> None:
        """A 2025-era session subscribes; its subscriptions end with it, or with its `key`'s sight of the server."""
        session = id(connection)
        deliver: Deliver = connection.send_resource_updated
        if key is not None:
            deliver = key.guarded(server, deliver)
        first_here = await self.add(session, server, uri, named, deliver, upstream)
        if first_here:
            connection.exit_stack.callback(self.release_soon, session, upstream)
        if key is not None:
            key.subscriber.watch(self, lambda: self.release_unseen_soon(session, key.sees, upstream))
            if not key.sees(server):  # the key changed while the upstream was being subscribed
                self.release_unseen_soon(session, key.sees, upstream)

    async def unsubscribe(self, connection: Connection, server: str, uri: str, upstream: Upstream) -> None:
        async with self._lock:
            await self._drop((server, uri), id(connection), upstream)

    async def add(
        self, holder: Hashable, server: str, uri: str, named: str, deliver: Deliver, upstream: Upstream
    ) -> bool:
        """`holder` wants `uri` of `server` (subscribing the hub upstream if it is the first); True if `holder`
        held nothing before. Raises what the upstream answered, and then holds nothing new."""
        key = (server, uri)
        async with self._lock:
            holders = self._wanted.get(key)
            if not holders:
                await upstream(server, uri, True)
            first_here = not any(holder in h for h in self._wanted.values())
            self._wanted.setdefault(key, {})[holder] = (deliver, named)
        return first_here

    async def release(self, holder: Hashable, upstream: Upstream) -> None:
        """`holder` wants nothing any more."""
        async with self._lock:
            for key in [key for key, holders in self._wanted.items() if holder in holders]:
                await self._drop(key, holder, upstream)

    async def release_unseen(self, holder: Hashable, sees: Callable[[str], bool], upstream: Upstream) -> None:
        """`holder` wants nothing of the servers it no longer `sees`."""
        async with self._lock:
            for key in [key for key, holders in self._wanted.items() if holder in holders and not sees(key[0])]:
                await self._drop(key, holder, upstream)

    def release_unseen_soon(self, holder: Hashable, sees: Callable[[str], bool], upstream: Upstream) -> None:
        """`release_unseen` in the background: for the key watcher, which cannot wait on an upstream."""
        if self._tg is not None:
            self._tg.start_soon(self.release_unseen, holder, sees, upstream)

    def release_soon(self, holder: Hashable, upstream: Upstream) -> None:
        """`release` in the background: for clean-up code that cannot wait on an upstream."""
        if self._tg is not None and any(holder in holders for holders in self._wanted.values()):
            self._tg.start_soon(self.release, holder, upstream)

    async def _drop(self, key: tuple[str, str], holder: Hashable, upstream: Upstream) -> None:
        holders = self._wanted.get(key)
        if holders is None or holders.pop(holder, None) is None:
            return
        if not holders:
            del self._wanted[key]
            try:
                await upstream(key[0], key[1], False)
            except Exception as exc:
                logger.info("MCP server %r: unsubscribing %r failed: %s", key[0], key[1], exc)

    def updated(self, server: str, uri: str) -> None:
        """The upstream says `uri` changed: tell the holders that want it."""
        if self._tg is None:
            return
        for deliver, named in list(self._wanted.get((server, uri), {}).values()):
            self._tg.start_soon(_deliver, deliver, named)


async def _deliver(deliver: Deliver, uri: str) -> None:
    with anyio.move_on_after(DELIVERY_TIMEOUT):
        try:
            await deliver(uri)
        except Exception as exc:
            logger.info("a resource update could not be written to its client: %s", exc)
