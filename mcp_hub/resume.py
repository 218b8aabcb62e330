"""Resumable SSE streams for 2025-era sessions: each session's recent events, bounded, replayed on `Last-Event-ID`.

The SDK's transport calls an `EventStore` to number every SSE event it sends (and a priming event, empty, first on
each stream) and, when a client reconnects with `Last-Event-ID`, to replay what followed on that stream. The SDK
takes one store for every session, and its stream ids are JSON-RPC request ids, which repeat across sessions: one
shared store could replay one session's events to another. So each session gets a store of its own
(`SessionEventStores.open`), dropped with the session; its event ids are only meaningful to that session.

Each store keeps the latest `max_events` events and `max_bytes` of their JSON, dropping the oldest first. A client
whose last event was dropped gets nothing replayed (the SDK then ends the reconnection stream). An event is kept as
its message or, when the session fast path wrote it without building one (an answer), as its JSON, read back into the
message only to be replayed (as from Redis). The events live in this process; with Redis,
`mcp_hub/shared_sessions/events.py` keeps them there instead, for every replica.
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from collections import OrderedDict
from dataclasses import dataclass

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter

from toolpolicy.stream_resume import McpStreamResume


@dataclass(frozen=True, slots=True)
class _Event:
    stream_id: StreamId
    message: JSONRPCMessage | str | None
    """The message, or its JSON (`message_json`); None for none (a priming event)."""
    size: int


class EncodedEventStore(EventStore):
    """An event store that takes an event as its JSON (`store_encoded`): the session fast path writes the very JSON
    it stores, and makes it once."""

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        if message is None:
            return await self.store_encoded(stream_id, "")
        return await self.store_encoded(stream_id, message_json(message), message)

    @abstractmethod
    async def store_encoded(self, stream_id: StreamId, data: str, message: JSONRPCMessage | None = None) -> EventId:
        """`store_event` of the message whose `message_json` is `data` ("" for none); `message` is that message if
        it was made (without it, what replays is `stored_message(data)`)."""


def message_json(message: JSONRPCMessage) -> str:
    """A message's JSON as the SDK's transport writes it in an SSE event's data."""
    return message.model_dump_json(by_alias=True, exclude_unset=True)


def stored_message(data: str | bytes) -> JSONRPCMessage:
    """The message an event's JSON was written from, as replayed (what it dumps to is `data` again)."""
    message: JSONRPCMessage = jsonrpc_message_adapter.validate_json(data, by_name=False)
    return message


class SessionEventStore(EncodedEventStore):
    """One session's most recent SSE events, bounded by count and by bytes of JSON."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: OrderedDict[int, _Event] = OrderedDict()
        self._bytes = 0
        self._ids = itertools.count(1)

    # No `__len__`: the SDK tests the store for truth (`if self._event_store`), and an empty one must count.
    @property
    def events(self) -> int:
        """Events held now."""
        return len(self._events)

    @property
    def bytes(self) -> int:
        """Bytes of JSON held now."""
        return self._bytes

    async def store_encoded(self, stream_id: StreamId, data: str, message: JSONRPCMessage | None = None) -> EventId:
        size = len(data)
        number = next(self._ids)
        kept = message if message is not None else data or None
        self._events[number] = _Event(stream_id, kept, size)
        self._bytes += size
        while len(self._events) > self.max_events or (self._bytes > self.max_bytes and len(self._events) > 1):
            _, dropped = self._events.popitem(last=False)
            self._bytes -= dropped.size
        return str(number)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        if not last_event_id.isdecimal() or (last := self._events.get(int(last_event_id))) is None:
            return None
        after = int(last_event_id)
        # Copied first: sending awaits the client, and the transport stores new events meanwhile.
        later = [(number, event) for number, event in self._events.items() if number > after]
        for number, event in later:
            message = event.message
            if event.stream_id == last.stream_id and message is not None:
                replayed = stored_message(message) if isinstance(message, str) else message
                await send_callback(EventMessage(replayed, str(number)))
        return last.stream_id


class SessionEventStores:
    """A `SessionEventStore` per open session, made by `open` and dropped by `close` when the session ends."""

    def __init__(self, settings: McpStreamResume) -> None:
        self.settings = settings
        self._stores: dict[str, SessionEventStore] = {}

    @property
    def sessions(self) -> int:
        """Sessions with a store now."""
        return len(self._stores)

    def open(self, session_id: str) -> SessionEventStore:
        store = SessionEventStore(self.settings.max_events, self.settings.max_bytes)
        self._stores[session_id] = store
        return store

    def close(self, session_id: str) -> None:
        self._stores.pop(session_id, None)
