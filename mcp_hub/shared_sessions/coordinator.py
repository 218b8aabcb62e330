"""`SharedSessions`: one replica's side of the 2025-era sessions every replica serves (see the package docstring)."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anyio
import redis.asyncio as aioredis
from anyio.abc import TaskGroup
from mcp.client._transport import WriteStream
from mcp.server.connection import Connection
from mcp.server.streamable_http import GET_STREAM_KEY, StreamableHTTPServerTransport
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import InitializeRequestParams, JSONRPCError, JSONRPCResponse, jsonrpc_message_adapter
from pydantic import ValidationError
from redis.exceptions import RedisError

from mcp_hub.shared_sessions.directory import (
    ORPHANED,
    SessionDirectory,
    SessionKeys,
    SessionRecord,
)
from mcp_hub.shared_sessions.dispatcher import ID_SEPARATOR
from mcp_hub.shared_sessions.events import RedisEventStores
from toolpolicy.counters.resp import RespClient
from toolpolicy.settings import DEFAULT_REDIS_PREFIX, McpHubSettings

logger = logging.getLogger(__name__)

RECONNECT_DELAY = 1.0
"""Seconds between attempts to listen again after the connection to Redis broke."""
STATE_KEY_WAIT = 5.0
"""Seconds a starting replica waits for Redis to give it the shared `requestState` key (else it tries on each
reconnection, sealing under its own key meanwhile)."""
DETACH_TIMEOUT = 2.0
"""Seconds a session's copy that ends here waits to hand its subscriptions over (shutdown included)."""


@dataclass(frozen=True, slots=True)
class LocalSession:
    """A shared session as this replica serves it."""

    transport: StreamableHTTPServerTransport
    connection: Connection
    write: WriteStream[SessionMessage]
    """The transport's own write stream, before routing: what a message published here is written to."""


class SharedSessions:
    """Records in Redis, messages between replicas over Redis pub/sub, and this replica's sessions."""

    def __init__(
        self,
        url: str,
        settings: McpHubSettings,
        *,
        redis_prefix: str = DEFAULT_REDIS_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replica = secrets.token_hex(6)
        """This process's name among replicas: in its channel and in the ids of the requests it sends clients."""
        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.resp = RespClient(url, timeout=5) if RespClient.supports(url) else None
        """What the event stores write with (`events.py`), where the URL is a plain one."""
        self.keys = SessionKeys(redis_prefix)
        """Names of the keys and channels: `<redis_prefix>mcp:…`, so deployments sharing one Redis stay apart."""
        self.directory = SessionDirectory(self.client, settings.session_idle_timeout, self.keys)
        resume = settings.resume
        self.event_stores = (
            RedisEventStores(self.client, resume, self.directory.ttl, self.hold, keys=self.keys, resp=self.resp)
            if resume.enabled
            else None
        )
        self.local: dict[str, LocalSession] = {}
        self.on_level: Callable[[Connection, str], None] | None = None
        """Applies a log level set on any replica to this replica's copy of the session (the relay's filter)."""
        self.on_end: Callable[[str], Awaitable[None]] | None = None
        """Ends this replica's copy of a session ended on another (the session manager)."""
        self.on_adopt: Callable[[Connection, str, str, str], Awaitable[None]] | None = None
        """Subscribes this replica upstream, for its copy of a session, to `(server, uri, named)` (the relay)."""
        self.on_drop: Callable[[Connection, str, str], Awaitable[None]] | None = None
        """Gives up this replica's upstream hold of `(server, uri)` for its copy of a session (the relay)."""
        self.on_state_key: Callable[[bytes], None] | None = None
        """Seals `requestState` under the key all replicas share, once read from Redis (the relay's `StateKeys`)."""
        self.handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}
        """What handles the messages of each kind not about a session (`held_calls.py`), by `t`."""
        self.clock = clock
        self._touched: dict[str, float] = {}
        self._tg: TaskGroup | None = None
        self._state_key_read = False
        """Whether the shared key was read since the connection to Redis last broke (read again once it is back)."""

    # Records

    async def created(self, session_id: str, owner: dict[str, Any] | None, version: str, params: Any) -> None:
        record = SessionRecord(owner, version, params if isinstance(params, dict) else {})
        try:
            await self.directory.save(session_id, record)
        except RedisError:
            logger.exception("session %s could not be shared: it is served by this replica only", session_id[:8])
        self._touched[session_id] = self.clock()

    async def load(self, session_id: str) -> SessionRecord | None:
        return await self.directory.load(session_id)

    async def touch(self, session_id: str) -> None:
        """Keep the record as long as the session is used, refreshing it at most every eighth of its lifetime."""
        now = self.clock()
        if now - self._touched.get(session_id, -float("inf")) < self.directory.ttl / 8:
            return
        self._touched[session_id] = now
        try:
            await self.directory.touch(session_id)
        except RedisError as exc:
            logger.info("refreshing session %s in Redis failed: %s", session_id[:8], exc)
            return
        self._soon(self.adopt, session_id)  # and hold what a replica that died held

    async def level_set(self, session_id: str, level: str) -> None:
        try:
            await self.directory.set_level(session_id, level)
            await self.directory.publish(
                self.keys.broadcast, {"t": "level", "s": session_id, "l": level, "r": self.replica}
            )
        except RedisError:
            logger.exception("the log level of session %s reaches this replica only", session_id[:8])

    async def end(self, session_id: str) -> None:
        """The client ended the session here: end it everywhere."""
        try:
            await self.directory.end(session_id)
            await self.directory.publish(self.keys.broadcast, {"t": "end", "s": session_id, "r": self.replica})
        except RedisError:
            logger.exception("ending session %s on other replicas failed (they end it when it idles)", session_id[:8])

    # This replica's sessions

    def attach(self, session_id: str, session: LocalSession) -> None:
        """The session is served here (its server writes through `RoutedWrite` with `route`)."""
        self.local[session_id] = session

    async def detach(self, session_id: str) -> None:
        """This replica's copy ended: what it held upstream for the session is for another replica to hold."""
        self._touched.pop(session_id, None)
        if self.local.pop(session_id, None) is not None:
            with anyio.move_on_after(DETACH_TIMEOUT):
                await self._orphan(session_id)

    # Resource subscriptions

    async def subscription(self, connection: Connection, server: str, uri: str, named: str, on: bool) -> None:
        """A client (un)subscribed on this replica, which now holds the subscription upstream (or not)."""
        session_id = connection.session_id
        if session_id is None or session_id not in self.local:
            return
        try:
            if on:
                previous = await self.directory.subscribed(session_id, server, uri, named, self.replica)
            else:
                previous = await self.directory.unsubscribed(session_id, server, uri)
            if previous not in (None, self.replica, ORPHANED):
                # Another replica holds it upstream: it lets go (unsubscribed, or held here now).
                payload = {"t": "drop", "s": session_id, "sv": server, "u": uri, "r": self.replica}
                await self.directory.publish(self.keys.broadcast, payload)
        except RedisError:
            logger.exception("session %s: a subscription is not shared (lost if this replica goes)", session_id[:8])

    async def adopt(self, session_id: str) -> None:
        """Hold here the session's subscriptions that no live replica holds (one replica wins each)."""
        session = self.local.get(session_id)
        if session is None or self.on_adopt is None:
            return
        try:
            subscriptions = await self.directory.subscriptions(session_id)
            others = {holder for _, _, holder, _ in subscriptions if holder not in (self.replica, ORPHANED)}
            alive = await self.directory.listening(others)
            for server, uri, holder, named in subscriptions:
                if holder == self.replica or holder in alive:
                    continue
                if await self.directory.claim(session_id, server, uri, holder, self.replica):
                    logger.info("session %s: subscription to %s of %r held here now", session_id[:8], named, server)
                    await self.on_adopt(session.connection, server, uri, named)
        except RedisError as exc:
            logger.info("session %s: taking over its subscriptions failed: %s", session_id[:8], exc)
        except Exception:
            logger.exception("session %s: subscribing upstream for it failed", session_id[:8])

    async def _orphan(self, session_id: str) -> None:
        try:
            if await self.directory.orphan(session_id, self.replica):
                await self.directory.publish(self.keys.broadcast, {"t": "orphaned", "s": session_id, "r": self.replica})
        except RedisError as exc:
            logger.info("session %s: its subscriptions wait for another replica's check: %s", session_id[:8], exc)

    def _soon(self, work: Callable[[str], Coroutine[Any, Any, None]], session_id: str) -> None:
        if self._tg is not None:
            self._tg.start_soon(work, session_id)

    def restore(self, connection: Connection, record: SessionRecord) -> None:
        """Give a connection the state its session was initialised with, and what its client set since."""
        connection.client_params = InitializeRequestParams.model_validate(record.client_params, by_name=False)
        connection.protocol_version = record.protocol_version
        connection.initialized.set()
        if record.log_level is not None and self.on_level is not None:
            self.on_level(connection, record.log_level)
        if connection.session_id is not None:
            self._touched[connection.session_id] = self.clock()  # just read: alive, refreshed by the next touch
            self._soon(self.adopt, connection.session_id)

    # Streams and messages between replicas

    async def hold(self, session_id: str, stream: str) -> None:
        try:
            await self.directory.hold(session_id, stream, self.replica)
        except RedisError as exc:
            logger.info("session %s: other replicas will not find this stream: %s", session_id[:8], exc)

    async def release(self, session_id: str, stream: str) -> None:
        try:
            await self.directory.release(session_id, stream, self.replica)
        except RedisError as exc:
            logger.info("session %s: releasing a stream failed: %s", session_id[:8], exc)

    async def route(self, session_id: str, stream: str, item: SessionMessage) -> bool:
        try:
            holder = await self.directory.holder(session_id, stream)
            if holder is None or holder == self.replica:
                return False
            payload = {"t": "out", "s": session_id, "st": stream, "m": _dump(item)}
            if await self.directory.publish(self.keys.replica(holder), payload):
                return True
            await self.directory.release(session_id, stream, holder)  # it died holding the stream
        except RedisError as exc:
            logger.info("session %s: a message stays on this replica: %s", session_id[:8], exc)
        return False

    def owner_of(self, request_id: object) -> str | None:
        """The replica that sent the request this id answers, when that is another replica."""
        if not isinstance(request_id, str) or ID_SEPARATOR not in request_id:
            return None
        replica = request_id.partition(ID_SEPARATOR)[0]
        return replica if replica != self.replica else None

    async def forward_in(self, replica: str, session_id: str, body: dict[str, Any]) -> bool:
        """Send a client's answer to the replica waiting for it; False if that replica is gone."""
        payload = {"t": "in", "s": session_id, "m": body}
        try:
            return bool(await self.directory.publish(self.keys.replica(replica), payload))
        except RedisError as exc:
            logger.info("session %s: an answer could not reach replica %s: %s", session_id[:8], replica, exc)
            return False

    async def cancelled(self, session_id: str, body: dict[str, Any]) -> None:
        """A client's `notifications/cancelled`, posted here: for whichever replica runs the request it names."""
        payload = {"t": "cancel", "s": session_id, "m": body, "r": self.replica}
        try:
            await self.directory.publish(self.keys.broadcast, payload)
        except RedisError as exc:
            logger.info("session %s: a cancellation reaches this replica only: %s", session_id[:8], exc)

    async def publish_to(self, replica: str, payload: dict[str, Any]) -> bool:
        """Send `payload` to `replica`; False if it is gone (nobody listens on its channel) or Redis failed."""
        try:
            return bool(await self.directory.publish(self.keys.replica(replica), payload))
        except RedisError as exc:
            logger.info("a message could not reach replica %s: %s", replica, exc)
            return False

    async def alive(self, replica: str) -> bool:
        """Whether `replica` still listens on its channel (False too when Redis cannot say)."""
        try:
            return bool(await self.directory.listening({replica}))
        except RedisError:
            return False

    async def share_state_key(self) -> None:
        """Seal `requestState` under the key all replicas share from now on (read, or first made, in Redis)."""
        if self.on_state_key is None:
            return
        try:
            key = await self.directory.state_key()
        except RedisError as exc:
            logger.warning("the shared requestState key is unavailable (held calls stay on this replica): %s", exc)
            return
        self.on_state_key(key)
        self._state_key_read = True

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Receive what other replicas send this one, until cancelled (listening again after Redis fails)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            with anyio.move_on_after(STATE_KEY_WAIT):
                await self.share_state_key()  # before serving: a retry from another replica must open here
            task_status.started()
            try:
                while True:
                    await self._listen(tg)
                    await anyio.sleep(RECONNECT_DELAY)
            finally:
                self._tg = None

    async def close(self) -> None:
        if self.resp is not None:
            await self.resp.aclose()
        await self.client.aclose()

    async def _listen(self, tg: TaskGroup) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.keys.replica(self.replica), self.keys.broadcast)
            if not self._state_key_read:
                await self.share_state_key()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    tg.start_soon(self._received, message["data"])
        except (RedisError, OSError) as exc:
            logger.warning("listening to other replicas failed (trying again): %s", exc)
            self._state_key_read = False  # Redis may come back without it (restarted empty)
        finally:
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()

    async def _received(self, data: bytes) -> None:
        try:
            payload = json.loads(data)
            handler = self.handlers.get(payload["t"])
            if handler is not None:
                await handler(payload)
                return
            session = self.local.get(payload["s"])
            if session is None:
                return
            kind = payload["t"]
            if kind == "out":
                message = jsonrpc_message_adapter.validate_python(payload["m"], by_name=False)
                stream = payload["st"]
                related = stream != GET_STREAM_KEY and not isinstance(message, JSONRPCResponse | JSONRPCError)
                metadata = ServerMessageMetadata(related_request_id=stream) if related else None
                await session.write.send(SessionMessage(message, metadata=metadata))
            elif kind == "in" or (kind == "cancel" and payload.get("r") != self.replica):
                message = jsonrpc_message_adapter.validate_python(payload["m"], by_name=False)
                writer = session.transport._read_stream_writer  # the SDK's own path for a POSTed message
                if writer is not None:
                    await writer.send(SessionMessage(message))
            elif kind == "level" and self.on_level is not None:
                self.on_level(session.connection, payload["l"])
            elif kind == "end" and payload.get("r") != self.replica and self.on_end is not None:
                await self.on_end(payload["s"])
            elif kind == "orphaned":
                await self.adopt(payload["s"])
            elif kind == "drop" and payload.get("r") != self.replica and self.on_drop is not None:
                await self.on_drop(session.connection, payload["sv"], payload["u"])
        except (KeyError, ValueError, ValidationError, anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            logger.info("a message from another replica was dropped: %s", exc)


def _dump(item: SessionMessage) -> Any:
    return item.message.model_dump(mode="json", by_alias=True, exclude_unset=True)
