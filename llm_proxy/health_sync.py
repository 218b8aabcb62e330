"""Provider circuit breakers and key cool-downs shared by every replica through Redis, off the request's path.

Requests read breakers and cool-downs from process memory (`llm_proxy.health.Health`), never from Redis. When a replica
opens or closes a breaker or cools a key down, it publishes the change on the channel `<redis_prefix>llm-health` and
records it in the hash `<redis_prefix>llm-health:state` (one field per `<kind>:<name>`, with the wall-clock time it
ends), from a background task; every other replica applies what it receives to its own memory, and a replica that
starts, or reconnects after losing Redis, first reads the hash. So one replica's evidence spares the others the same
failures within a round trip.

Best effort by design: a change lost while Redis is away only means another replica finds out for itself, as it would
without Redis. Times cross processes as wall-clock instants, so replicas' clocks should agree (NTP).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from llm_proxy.health import Health, HealthChange
from toolpolicy.settings import DEFAULT_REDIS_PREFIX

logger = logging.getLogger(__name__)

CHANNEL = "llm-health"
"""Pub/sub channel of changes (after the `redis_prefix`), as JSON: `{"origin", "kind", "name", "until"}`."""
STATE = "llm-health:state"
"""Hash of what is open or cooling now (after the `redis_prefix`): field `open:<name>` or `cool:<name>`, value the
wall-clock end (seconds)."""
RECONNECT_DELAY = 1.0
"""Seconds between attempts to reach Redis again after losing it."""


class RedisHealthSync:
    """Publishes `health`'s changes and applies every other replica's; `start()` and `stop()` bracket its life."""

    def __init__(
        self,
        health: Health,
        url: str,
        *,
        redis_prefix: str = DEFAULT_REDIS_PREFIX,
        wall: Callable[[], float] = time.time,
        reconnect_delay: float = RECONNECT_DELAY,
    ) -> None:
        self.health = health
        self.wall = wall
        self.reconnect_delay = reconnect_delay
        self.channel = redis_prefix + CHANNEL
        self.state = redis_prefix + STATE
        self.origin = uuid.uuid4().hex
        """This replica's id: its own messages come back to it and are skipped."""
        self.redis = aioredis.from_url(url, socket_connect_timeout=2.0, socket_timeout=None)
        self._outbox: asyncio.Queue[HealthChange] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()
        """Set while this replica listens (tests wait on it instead of sleeping)."""
        health.listener = self._outbox.put_nowait

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="llm-health listen"),
            asyncio.create_task(self._publish_forever(), name="llm-health publish"),
        ]

    async def stop(self) -> None:
        self.health.listener = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.redis.aclose()

    # Publishing: the request's path only queues; this task sends.
    async def _publish_forever(self) -> None:
        while True:
            changes = [await self._outbox.get()]
            while not self._outbox.empty():
                changes.append(self._outbox.get_nowait())
            try:
                await self._publish(changes)
            except (RedisError, OSError) as exc:
                logger.warning("could not share %d breaker or cool-down changes through Redis: %s", len(changes), exc)

    async def _publish(self, changes: list[HealthChange]) -> None:
        now = self.wall()
        async with self.redis.pipeline(transaction=False) as pipe:
            for change in changes:
                until = now + change.seconds
                if change.kind == "close":
                    pipe.hdel(self.state, f"open:{change.name}")
                else:
                    pipe.hset(self.state, f"{change.kind}:{change.name}", repr(until))
                message = {"origin": self.origin, "kind": change.kind, "name": change.name, "until": until}
                pipe.publish(self.channel, json.dumps(message))
            await pipe.execute()

    # Listening: subscribe first, then read the state, so nothing published in between is missed.
    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                logger.warning("lost Redis for shared breakers (%s); retrying in %.1fs", exc, self.reconnect_delay)
            finally:
                self.subscribed.clear()
            await asyncio.sleep(self.reconnect_delay)

    async def _listen(self) -> None:
        async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            await self._load()
            self.subscribed.set()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    self._receive(message["data"])

    async def _load(self) -> None:
        now = self.wall()
        ended = []
        for field, value in (await self.redis.hgetall(self.state)).items():
            kind, _, name = _text(field).partition(":")
            until = float(_text(value))
            if until <= now:
                ended.append(field)
            elif kind == "open":
                self.health.apply(HealthChange("open", name, until - now))
            elif kind == "cool":
                self.health.apply(HealthChange("cool", name, until - now))
        if ended:
            await self.redis.hdel(self.state, *ended)

    def _receive(self, data: Any) -> None:
        try:
            message = json.loads(data)
            if message["origin"] == self.origin:
                return
            kind, name, until = message["kind"], message["name"], float(message["until"])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed message on %s: %r", self.channel, data)
            return
        if kind == "open" or kind == "close" or kind == "cool":
            self.health.apply(HealthChange(kind, name, max(0.0, until - self.wall())))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
