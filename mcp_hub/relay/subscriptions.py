"""2025-era `resources/subscribe` and `resources/unsubscribe`, reference-counted per (upstream, URI).

The first client session to subscribe to a URI subscribes the hub upstream; the last one to leave (unsubscribing,
or its session ending) unsubscribes it. An upstream's `notifications/resources/updated` goes to the sessions that
subscribed to that URI, under the URI each of them subscribed with (on `/mcp`, the `isthmus://` form). After an
upstream reconnects, the hub subscribes it again to every URI some session still wants.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup
from mcp.server.connection import Connection

from mcp_hub.relay.calls import DELIVERY_TIMEOUT

logger = logging.getLogger(__name__)

Upstream = Callable[[str, str, bool], Awaitable[None]]
"""`(server, uri, subscribe)`: (un)subscribe the hub upstream; raises what the upstream answered."""


class Subscriptions:
    def __init__(self) -> None:
        self._wanted: dict[tuple[str, str], dict[int, tuple[Connection, str]]] = {}
        """(server, upstream URI) -> session -> (its connection, the URI it subscribed with)."""
        self._lock = anyio.Lock()
        self._tg: TaskGroup | None = None

    def attach(self, tg: TaskGroup | None) -> None:
        """Where deliveries and the clean-up of ended sessions run (the hub's lifetime)."""
        self._tg = tg

    def uris(self, server: str) -> list[str]:
        return sorted(uri for (name, uri), sessions in self._wanted.items() if name == server and sessions)

    async def subscribe(self, connection: Connection, server: str, uri: str, named: str, upstream: Upstream) -> None:
        key, session = (server, uri), id(connection)
        async with self._lock:
            sessions = self._wanted.get(key)
            if not sessions:
                await upstream(server, uri, True)
            first_here = not any(session in s for s in self._wanted.values())
            self._wanted.setdefault(key, {})[session] = (connection, named)
        if first_here:
            connection.exit_stack.callback(self._session_ended, session, upstream)

    async def unsubscribe(self, connection: Connection, server: str, uri: str, upstream: Upstream) -> None:
        async with self._lock:
            await self._drop((server, uri), id(connection), upstream)

    async def _drop(self, key: tuple[str, str], session: int, upstream: Upstream) -> None:
        sessions = self._wanted.get(key)
        if sessions is None or sessions.pop(session, None) is None:
            return
        if not sessions:
            del self._wanted[key]
            try:
                await upstream(key[0], key[1], False)
            except Exception as exc:
                logger.info("MCP server %r: unsubscribing %r failed: %s", key[0], key[1], exc)

    def _session_ended(self, session: int, upstream: Upstream) -> None:
        keys = [key for key, sessions in self._wanted.items() if session in sessions]
        if keys and self._tg is not None:
            self._tg.start_soon(self._forget, keys, session, upstream)

    async def _forget(self, keys: list[tuple[str, str]], session: int, upstream: Upstream) -> None:
        async with self._lock:
            for key in keys:
                await self._drop(key, session, upstream)

    def updated(self, server: str, uri: str) -> None:
        """The upstream says `uri` changed: tell the sessions that want it."""
        if self._tg is None:
            return
        for connection, named in list(self._wanted.get((server, uri), {}).values()):
            self._tg.start_soon(_deliver, connection, named)


async def _deliver(connection: Connection, uri: str) -> None:
    with anyio.move_on_after(DELIVERY_TIMEOUT):
        try:
            await connection.send_resource_updated(uri)
        except Exception as exc:
            logger.info("a resource update could not be written to its client: %s", exc)
