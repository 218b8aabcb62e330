"""A session's recent SSE events in a Redis stream, so a client resuming with `Last-Event-ID` may land on any replica.

The per-process store (`mcp_hub/resume.py`) explains why each session has a store of its own. Here the store is the
Redis stream `<prefix>s:<id>:ev` (`isthmus:mcp:s:<id>:ev` under the default `redis_prefix`): each event is one `XADD`
(the stream capped at `max_events` and expiring with the session), and its Redis entry id is the SSE event id, ordered
across replicas. Two are written per 2025-11-25 call (its priming event and its answer), so they go through the
counters' lean client (`RespClient`, for a plain `redis://` URL): a redis-py pipeline of `XADD` and `EXPIRE` costs
about 420k instructions in this process, the same two commands there about 50k (a URL it does not speak keeps the
pipeline). `max_bytes` is not enforced here: each event is already bounded by `mcp.max_upstream_message_bytes`.

A stream resumed here is registered as held by this replica, so messages for it produced on another replica (the call
still running there) are published here (`outbound.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, StreamId
from mcp_types import JSONRPCMessage
from redis.exceptions import RedisError

from mcp_hub.resume import EncodedEventStore, stored_message
from mcp_hub.shared_sessions.directory import SessionKeys
from toolpolicy.counters.resp import RespClient
from toolpolicy.stream_resume import McpStreamResume

logger = logging.getLogger(__name__)

Hold = Callable[[str, StreamId], Awaitable[None]]
"""`(session_id, stream_id)`: record that this replica now holds that stream of that session open."""


class RedisEventStore(EncodedEventStore):
    """One session's most recent SSE events, in Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        session_id: str,
        settings: McpStreamResume,
        ttl: int,
        hold: Hold,
        *,
        keys: SessionKeys,
        resp: RespClient | None = None,
    ) -> None:
        self.client = client
        self.resp = resp
        """The lean client events are written with, where the URL allows one (else `client`'s pipeline)."""
        self._execute: Callable[..., Awaitable[Any]] = client.execute_command
        self.session_id = session_id
        self.key = keys.events(session_id)
        self.max_events = settings.max_events
        self.ttl = ttl
        self.hold = hold
        self._unkept = 0
        self.resumed: set[StreamId] = set()
        """Streams resumed on this replica (released when their GET ends: `FairSessionManager`)."""

    async def store_encoded(self, stream_id: StreamId, data: str, message: JSONRPCMessage | None = None) -> EventId:
        try:
            if self.resp is not None:  # the commands redis-py's pipeline sends, one after the other
                event_id = await self.resp.execute(
                    "XADD", self.key, "MAXLEN", self.max_events, "*", "s", stream_id, "m", data
                )
                await self.resp.execute("EXPIRE", self.key, self.ttl)
            else:
                pipe: Any = self.client.pipeline(transaction=False)
                async with pipe:
                    pipe.xadd(self.key, {"s": stream_id, "m": data}, maxlen=self.max_events, approximate=False)
                    pipe.expire(self.key, self.ttl)
                    event_id, _ = await pipe.execute()
        except RedisError as exc:
            # The event is still sent; only resuming after it is impossible (an id Redis cannot read replays nothing).
            logger.warning("session %s: an SSE event could not be kept for resumption: %s", self.session_id[:8], exc)
            self._unkept += 1
            return f"unkept-{self._unkept}"
        return str(event_id.decode())

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        try:
            last: list[Any] = await self._execute("XRANGE", self.key, last_event_id, last_event_id, "COUNT", 1)
        except RedisError:
            return None  # not an id Redis can read: nothing to replay, as for an id the store dropped
        if not last:
            return None
        stream_id: str = last[0][1][b"s"].decode()
        later: list[Any] = await self._execute("XRANGE", self.key, "(" + last_event_id, "+")
        for event_id, fields in later:
            if fields[b"s"].decode() == stream_id and fields[b"m"]:
                await send_callback(EventMessage(stored_message(fields[b"m"]), event_id.decode()))
        await self.hold(self.session_id, stream_id)
        self.resumed.add(stream_id)
        return stream_id


class RedisEventStores:
    """The Redis event store of each session, made by `open`; `close` forgets it here (Redis expires the events)."""

    def __init__(
        self,
        client: aioredis.Redis,
        settings: McpStreamResume,
        ttl: int,
        hold: Hold,
        *,
        keys: SessionKeys,
        resp: RespClient | None = None,
    ) -> None:
        self.client, self.settings, self.ttl, self.hold, self.keys = client, settings, ttl, hold, keys
        self.resp = resp
        self._stores: dict[str, RedisEventStore] = {}

    @property
    def sessions(self) -> int:
        return len(self._stores)

    def open(self, session_id: str) -> RedisEventStore:
        store = RedisEventStore(
            self.client, session_id, self.settings, self.ttl, self.hold, keys=self.keys, resp=self.resp
        )
        self._stores[session_id] = store
        return store

    def get(self, session_id: str) -> RedisEventStore | None:
        return self._stores.get(session_id)

    def close(self, session_id: str) -> None:
        self._stores.pop(session_id, None)
