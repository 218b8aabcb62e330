"""What every replica knows of a 2025-era session, in Redis: its record, who holds its streams, its channels.

Keys (prefix `<redis_prefix>mcp:`, `isthmus:mcp:` by default: `SessionKeys`), all ending with the session:

- `s:<id>`: the record, a hash (`SessionRecord`), expiring `ttl` seconds after the session's last request;
- `s:<id>:h:<stream>`: the replica holding one of the session's SSE streams open (the standalone GET stream is
  `_GET_stream`, a resumed POST stream its JSON-RPC request id), expiring after `HOLDER_TTL`;
- `s:<id>:ev`: the session's recent SSE events (`events.py`);
- `s:<id>:subs`: its resource subscriptions, a hash of `<server> <uri>` to `<replica> <uri as subscribed>`, the
  replica being the one subscribed upstream for it (`-` while none is: the one that was let go of its copy).

Channels: `<prefix>r:<replica>` carries what one replica must deliver (messages for a stream it holds, answers
to requests it sent, retries of the held calls it runs and what came of them); `<prefix>all` what every replica
holding the session must apply (a log level, the end, a client's cancellation).

`<prefix>state-key` holds the key every replica seals the hub's `requestState` under
(`mcp_hub/relay/state_keys.py`): 32 random bytes, written once by the first replica (`SET NX`), never expiring.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from toolpolicy.errors import ServiceUnavailable
from toolpolicy.settings import DEFAULT_REDIS_PREFIX

NAMESPACE = "mcp:"
"""What follows the gateway's `redis_prefix` in every key and channel of shared sessions."""
HOLDER_TTL = 24 * 3600
"""Seconds a stream holder entry outlives its last refresh: a replica that died without releasing it is found out
sooner, by the first message published to it that no one receives."""

STATE_KEY_BYTES = 32

ORPHANED = "-"
"""The holder of a subscription no replica holds upstream now."""

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_CLAIM = """
local held = redis.call('hget', KEYS[1], ARGV[1])
if held and string.sub(held, 1, #ARGV[2] + 1) == ARGV[2] .. ' ' then
  redis.call('hset', KEYS[1], ARGV[1], ARGV[3] .. string.sub(held, #ARGV[2] + 1))
  return 1
end
return 0
"""
_ORPHAN = """
local fields = redis.call('hgetall', KEYS[1])
local count = 0
for i = 1, #fields, 2 do
  if string.sub(fields[i + 1], 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
    redis.call('hset', KEYS[1], fields[i], ARGV[2] .. string.sub(fields[i + 1], #ARGV[1] + 1))
    count = count + 1
  end
end
return count
"""


class SessionKeys:
    """The names of the shared sessions' keys and channels under one deployment's `redis_prefix`."""

    __slots__ = ("broadcast", "prefix", "state_key")

    def __init__(self, redis_prefix: str = DEFAULT_REDIS_PREFIX) -> None:
        prefix = self.prefix = redis_prefix + NAMESPACE
        self.broadcast = prefix + "all"
        """The channel every replica listens on."""
        self.state_key = prefix + "state-key"
        """The key every replica seals `requestState` under."""

    def record(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}"

    def holder(self, session_id: str, stream: str) -> str:
        return f"{self.prefix}s:{session_id}:h:{stream}"

    def events(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}:ev"

    def subscriptions(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}:subs"

    def replica(self, replica: str) -> str:
        """The channel of one replica."""
        return f"{self.prefix}r:{replica}"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as `initialize` left it, and what its client set since."""

    owner: dict[str, Any] | None
    """The credential that opened it (the SDK's `AuthorizationContext`: key id and endpoint); no other may use it."""
    protocol_version: str
    """The version `initialize` negotiated."""
    client_params: dict[str, Any]
    """The client's `initialize` params (client info, capabilities), as JSON."""
    log_level: str | None = None
    """What `logging/setLevel` last asked for, if anything."""

    def fields(self) -> dict[str, str]:
        fields = {
            "owner": json.dumps(self.owner),
            "version": self.protocol_version,
            "client": json.dumps(self.client_params),
        }
        if self.log_level is not None:
            fields["level"] = self.log_level
        return fields

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> SessionRecord | None:
        try:
            return cls(
                owner=json.loads(fields[b"owner"]),
                protocol_version=fields[b"version"].decode(),
                client_params=json.loads(fields[b"client"]),
                log_level=fields[b"level"].decode() if b"level" in fields else None,
            )
        except (KeyError, ValueError):
            return None  # expired between fields, or not written by this code: as good as absent


class SessionDirectory:
    """The Redis half of shared sessions: records, stream holders, and publishing to replicas."""

    def __init__(self, client: aioredis.Redis, ttl: float, keys: SessionKeys) -> None:
        self.client = client
        self.keys = keys
        self._execute: Callable[..., Awaitable[Any]] = client.execute_command
        """Commands without redis-py's per-command wrappers (and their loose typing)."""
        self.ttl = max(1, int(ttl))
        """Seconds a session's record outlives its last request (`mcp.session_idle_timeout`)."""

    async def save(self, session_id: str, record: SessionRecord) -> None:
        key = self.keys.record(session_id)
        pipe: Any = self.client.pipeline(transaction=True)
        async with pipe:
            pipe.delete(key).hset(key, mapping=record.fields()).expire(key, self.ttl)
            await pipe.execute()

    async def load(self, session_id: str) -> SessionRecord | None:
        try:
            fields: dict[bytes, bytes] = await self._execute("HGETALL", self.keys.record(session_id))
        except RedisError as exc:
            raise ServiceUnavailable(f"the session store is unreachable: {exc}") from exc
        return SessionRecord.from_fields(fields) if fields else None

    async def set_level(self, session_id: str, level: str) -> None:
        """Record the level, if the session still exists (HSET would recreate an expired one without its owner)."""
        key = self.keys.record(session_id)
        pipe: Any = self.client.pipeline(transaction=True)
        async with pipe:
            pipe.exists(key).hset(key, "level", level)
            exists, _ = await pipe.execute()
        if not exists:
            await self.client.delete(key)

    async def touch(self, session_id: str) -> None:
        pipe: Any = self.client.pipeline(transaction=False)
        async with pipe:
            record, subscriptions = self.keys.record(session_id), self.keys.subscriptions(session_id)
            pipe.expire(record, self.ttl).expire(subscriptions, self.ttl)
            await pipe.execute()

    async def end(self, session_id: str) -> None:
        names = self.keys
        keys = (names.record(session_id), names.events(session_id), names.subscriptions(session_id))
        await self.client.delete(*keys, names.holder(session_id, "_GET_stream"))

    async def subscribed(self, session_id: str, server: str, uri: str, named: str, replica: str) -> str | None:
        """`replica` holds the subscription now; the replica that held it before, if any."""
        key, field = self.keys.subscriptions(session_id), f"{server} {uri}"
        pipe: Any = self.client.pipeline(transaction=True)
        async with pipe:
            pipe.hget(key, field).hset(key, field, f"{replica} {named}").expire(key, self.ttl)
            previous, _, _ = await pipe.execute()
        return _holder(previous)

    async def unsubscribed(self, session_id: str, server: str, uri: str) -> str | None:
        """Nobody holds the subscription now; the replica that held it, if any."""
        key, field = self.keys.subscriptions(session_id), f"{server} {uri}"
        pipe: Any = self.client.pipeline(transaction=True)
        async with pipe:
            pipe.hget(key, field).hdel(key, field)
            previous, _ = await pipe.execute()
        return _holder(previous)

    async def subscriptions(self, session_id: str) -> list[tuple[str, str, str, str]]:
        """`(server, uri, holder, named)` of each of the session's subscriptions."""
        fields: dict[bytes, bytes] = await self._execute("HGETALL", self.keys.subscriptions(session_id))
        found = []
        for field, value in fields.items():
            server, _, uri = field.decode().partition(" ")
            holder, _, named = value.decode().partition(" ")
            found.append((server, uri, holder, named))
        return found

    async def claim(self, session_id: str, server: str, uri: str, holder: str, replica: str) -> bool:
        """Make `replica` the holder of a subscription, if `holder` still is (one replica wins)."""
        claimed = await self._execute(
            "EVAL", _CLAIM, 1, self.keys.subscriptions(session_id), f"{server} {uri}", holder, replica
        )
        return bool(claimed)

    async def orphan(self, session_id: str, replica: str) -> int:
        """`replica` holds none of the session's subscriptions any more; how many it held."""
        count: int = await self._execute("EVAL", _ORPHAN, 1, self.keys.subscriptions(session_id), replica, ORPHANED)
        return count

    async def listening(self, replicas: set[str]) -> set[str]:
        """Those of `replicas` still listening on their channel (alive)."""
        if not replicas:
            return set()
        names = sorted(replicas)
        reply: list[tuple[bytes, int]] = await self._execute("PUBSUB NUMSUB", *(self.keys.replica(n) for n in names))
        counts = dict(reply)
        return {name for name in names if counts.get(self.keys.replica(name).encode(), 0)}

    async def hold(self, session_id: str, stream: str, replica: str) -> None:
        await self.client.set(self.keys.holder(session_id, stream), replica, ex=HOLDER_TTL)

    async def release(self, session_id: str, stream: str, replica: str) -> None:
        await self._execute("EVAL", _RELEASE, 1, self.keys.holder(session_id, stream), replica)

    async def holder(self, session_id: str, stream: str) -> str | None:
        value: bytes | None = await self._execute("GET", self.keys.holder(session_id, stream))
        return value.decode() if value is not None else None

    async def state_key(self) -> bytes:
        """The key all replicas seal `requestState` under: made by the first replica that asks, read by the others."""
        name = self.keys.state_key
        await self.client.set(name, secrets.token_bytes(STATE_KEY_BYTES), nx=True)
        key: bytes | None = await self._execute("GET", name)
        if key is None or len(key) < STATE_KEY_BYTES:
            raise RedisError(f"{name} holds no usable key")  # deleted in between, or not written by this code
        return key

    async def publish(self, channel: str, payload: dict[str, Any]) -> int:
        """Publish; how many replicas received it (0: none listens there any more)."""
        received: int = await self.client.publish(channel, json.dumps(payload))
        return received


def _holder(value: bytes | None) -> str | None:
    return value.decode().partition(" ")[0] if value is not None else None
