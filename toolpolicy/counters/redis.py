"""Counters in Redis, shared by every replica: each check-and-reserve is one Lua script, so it is atomic.

Keys (prefix the gateway's `redis_prefix`, `isthmus:` by default): `u:<bucket>` is a hash whose `used` field is
committed usage; `u:<rolling window>sum` the sum of a rolling window's closed buckets (read instead of them);
`h:<limit>:q` a sorted set of holds (`<amount>:<request id>`) scored by their deadlines, `h:<limit>` a hash of their
`__total` (and `__next`, `__keep`: when a sweep or a TTL is next due; holds taken by releases before 2026-12 are
hash fields by request id, with their deadlines in `h:<limit>:z`); `since` when this Redis began holding counters.
Redis Cluster is not supported: the scripts name keys they compute (single-node and replicated setups are).

The scripts and the form of their arguments are in `toolpolicy.counters.redis_scripts`; each call is one `EVALSHA` (the
script itself is sent only when Redis answers `NOSCRIPT`, e.g. after a restart), on one pipelined connection shared by
every request (`toolpolicy.counters.resp`) for a plain `redis://` URL. Settlements are queued and sent with the next
reservation or by a tick (`toolpolicy.counters.settle_queue`): a request's own round trip is its reservation.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, NoScriptError, RedisError

from toolpolicy.counters.base import CounterStoreError, Limit, ReserveOutcome
from toolpolicy.counters.redis_scripts import (
    FULL,
    MISSING,
    RESERVE_SCRIPT,
    SEED_SCRIPT,
    SETTLE_SCRIPT,
    CounterKeys,
    Script,
    StaticParts,
    frame,
    size,
)
from toolpolicy.counters.resp import RespClient
from toolpolicy.counters.settle_queue import SettleQueue
from toolpolicy.settings import DEFAULT_REDIS_PREFIX

_outcome = functools.partial(tuple.__new__, ReserveOutcome)
"""A ReserveOutcome from all four of its fields, made in C: calling the class runs its `__new__`, Python code that a
granted reservation (every admitted request) paid some 2,000 instructions for."""
SETTLE_INTERVAL = 0.05
"""Seconds a settlement waits for a reservation to carry it before it is sent on its own."""


class RedisCounterStore:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_REDIS_PREFIX,
        timeout: float = 2.0,
        max_connections: int = 64,
        settle_interval: float = SETTLE_INTERVAL,
    ) -> None:
        # A blocking pool makes bursts wait for a connection instead of failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=15,
            # A restarted Redis has closed every pooled connection: send once more on a new one instead of failing
            # a request per stale connection. Should the first send have run after all, its amounts count twice:
            # an over-count, never an under-count.
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
        self._client = aioredis.Redis(connection_pool=pool)
        self._resp = RespClient(url, timeout=timeout) if RespClient.supports(url) else None
        self._execute: Callable[..., Awaitable[Any]] = (
            self._resp.execute if self._resp is not None else self._client.execute_command
        )
        """Where the scripts go: one pipelined connection for a plain `redis://` URL (`toolpolicy.counters.resp`),
        else the pool's command entry point, without the per-command wrappers of its `evalsha`."""
        self.keys = CounterKeys(prefix)
        """The keys' names: each deployment sharing a Redis counts under its own `redis_prefix`."""
        self._static = StaticParts(self.keys)
        self.settles = SettleQueue(self._settle_now, interval=settle_interval)
        self._hold_seconds: float | None = None
        self._hold_text = ""
        """The last hold time reserved with, and its text (a float's repr costs more than the rest of a number)."""

    async def _run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One round trip in the usual case: EVALSHA, and the script itself only when Redis does not know it."""
        try:
            try:
                return await self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
            except NoScriptError:
                await self._execute("SCRIPT", "LOAD", script.source)
                return await self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except RedisError as exc:
            raise CounterStoreError(f"Redis counter store: {exc}") from exc

    async def reserve(
        self, request_id: str, limits: list[Limit], *, now: float, hold_seconds: float, split: int = 0
    ) -> ReserveOutcome:
        carried = self.settles.take_now()
        if carried is None:
            carried = await self.settles.take()
        if hold_seconds is not self._hold_seconds:  # the same setting request after request: formatted once
            self._hold_seconds, self._hold_text = hold_seconds, repr(hold_seconds)
        joined = self._static.joined(limits)
        id_size = len(request_id) if request_id.isascii() else size(request_id)  # `size`'s usual case, inline
        # One argument (see `redis_scripts`): the numbers and sizes, the request id, the limits, what rides along.
        head = f"{now!r} {self._hold_text} {split} {id_size} {joined.spec_size}\n"
        body = "".join([head, request_id, joined.spec, *carried]) if carried else head + request_id + joined.spec
        try:
            try:  # `_run`, written out for the usual case: one coroutine less per request
                reply = await self._execute("EVALSHA", RESERVE_SCRIPT.sha, 1, self.keys.since, body)
            except NoScriptError:
                reply = await self._run(RESERVE_SCRIPT, (self.keys.since,), (body,))
            except RedisError as exc:
                raise CounterStoreError(f"Redis counter store: {exc}") from exc
        except CounterStoreError:
            self.settles.put_back(carried)
            raise
        count = len(limits)
        status, usage = reply[0], tuple(reply[1 : count + 1])
        if status == MISSING:
            start = len(self.keys.used)
            names = (key.decode() if isinstance(key, bytes) else key for key in reply[count + 1 :])
            return ReserveOutcome(False, usage, missing=tuple(name[start:] for name in names))
        if status == FULL:
            return ReserveOutcome(False, usage, failed=reply[count + 1])
        return _outcome((True, usage, None, ()))

    async def settle(self, request_id: str, settlements: Sequence[tuple[Limit, int]], *, now: float) -> None:
        """Queue the settlement (see the module's docstring); `flush` sends it at once."""
        amounts: list[str] = []
        limits: list[Limit] = []
        for limit, actual in settlements:
            amounts.append(f"{actual} {0 if limit.commit else limit.amount}")
            limits.append(limit)
        if not limits:
            self.settles.add(frame("\n" + request_id))
            return
        # The id last: the rest of the frame is the id, whatever its characters. `lines`, not `joined`: a
        # settlement names the limits its reservation did less its counted ones, a set `joined` has not seen when
        # the amounts are new (a Joined built and kept for one use); `lines` finds each static part by the plan's limit.
        self.settles.add(frame(f"{' '.join(amounts)}\n{self._static.lines(limits)}\n{request_id}"))

    async def _settle_now(self, settlements: list[str]) -> None:
        await self._run(SETTLE_SCRIPT, (), ("".join(settlements),))

    async def flush(self) -> None:
        await self.settles.flush()

    async def seed(self, key: str, used: int, ttl: int | None, *, now: float) -> None:
        await self._run(SEED_SCRIPT, (self.keys.used + key,), [used, "" if ttl is None else ttl])

    async def ping(self, *, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._client.ping(), timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            raise CounterStoreError(f"Redis counter store: {exc or type(exc).__name__}") from exc

    async def aclose(self) -> None:
        try:
            await self.settles.aclose()  # queued settlements are not lost on shutdown
        finally:
            if self._resp is not None:
                await self._resp.aclose()
            await self._client.aclose(close_connection_pool=True)
