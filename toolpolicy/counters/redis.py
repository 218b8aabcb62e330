"""Counters in Redis, shared by every replica: each check-and-reserve is one Lua script, so it is atomic.

Keys (prefix `isthmus:`): `u:<bucket>` is a hash whose `used` field is committed usage; `h:<limit>` a hash of holds
by request id plus `__total`, with `h:<limit>:z` a sorted set of their deadlines; `since` when this Redis began
holding counters. Redis Cluster is not supported: the scripts name keys they compute (single-node and replicated
setups are).
"""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, RedisError

from toolpolicy.counters.base import CounterStoreError, Limit, ReserveOutcome, Settlement

PREFIX = "isthmus:"
SINCE = PREFIX + "since"
"""When this Redis began holding counters (set by the first reservation): a window begun later is complete in
Redis, an older one may have lost usage in a restart and is re-seeded."""

_SWEEP_AND_MEASURE = """
local function sweep(hk, now)
  local zk = hk .. ':z'
  local expired = redis.call('ZRANGEBYSCORE', zk, '-inf', now)
  for _, member in ipairs(expired) do
    local amount = tonumber(redis.call('HGET', hk, member) or '0')
    redis.call('HDEL', hk, member)
    redis.call('HINCRBY', hk, '__total', -amount)
    redis.call('ZREM', zk, member)
  end
  return tonumber(redis.call('HGET', hk, '__total') or '0')
end
"""

RESERVE = (
    _SWEEP_AND_MEASURE
    + """
local limits = cjson.decode(ARGV[1])
local rid, now, hold_seconds = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local since = tonumber(redis.call('GET', ARGV[5]) or '')
if not since then
  -- This Redis holds no counters yet (first use, or restarted empty): they are complete from now on.
  since = now
  redis.call('SET', ARGV[5], ARGV[3])
end
local usage, missing = {}, {}
for i, l in ipairs(limits) do
  local committed = 0
  for _, key in ipairs(l.u) do
    local value = redis.call('HGET', key, 'used')
    if value then
      committed = committed + tonumber(value)
    elseif l.s and l.w and l.w > since then
      redis.call('HSET', key, 'used', 0)  -- a window begun after: new, not lost
      if l.t > 0 then redis.call('EXPIRE', key, l.t) end
    elseif l.s then
      table.insert(missing, key)
    end
  end
  usage[i] = committed + sweep(l.h, now)
end
if #missing > 0 then
  return {'missing', cjson.encode(usage), cjson.encode(missing)}
end
for i, l in ipairs(limits) do
  if usage[i] + l.n > l.l then
    return {'full', cjson.encode(usage), tostring(i - 1)}
  end
end
for _, l in ipairs(limits) do
  if l.c then
    redis.call('HINCRBY', l.a, 'used', l.n)
    if l.t > 0 then redis.call('EXPIRE', l.a, l.t) end
  elseif l.n > 0 then
    redis.call('HINCRBY', l.h, rid, l.n)
    redis.call('HINCRBY', l.h, '__total', l.n)
    redis.call('ZADD', l.h .. ':z', now + hold_seconds, rid)
    local keep = math.ceil(hold_seconds) + 3600
    redis.call('EXPIRE', l.h, keep)
    redis.call('EXPIRE', l.h .. ':z', keep)
  end
end
return {'ok', cjson.encode(usage)}
"""
)

SETTLE = """
local settlements = cjson.decode(ARGV[1])
local rid = ARGV[2]
for _, s in ipairs(settlements) do
  local held = redis.call('HGET', s.h, rid)
  if held then
    redis.call('HDEL', s.h, rid)
    redis.call('HINCRBY', s.h, '__total', -tonumber(held))
    redis.call('ZREM', s.h .. ':z', rid)
  end
  if s.n ~= 0 and ((not s.s) or redis.call('EXISTS', s.a) == 1) then
    redis.call('HINCRBY', s.a, 'used', s.n)
    if s.t > 0 then redis.call('EXPIRE', s.a, s.t) end
  end
end
return 1
"""

SEED = """
if redis.call('HSETNX', KEYS[1], 'used', ARGV[1]) == 1 and ARGV[2] ~= '' then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""


def _encode(limit: Limit) -> dict[str, object]:
    encoded: dict[str, object] = {
        "h": PREFIX + "h:" + limit.hold_key,
        "u": [PREFIX + "u:" + key for key in limit.used_keys],
        "a": PREFIX + "u:" + limit.add_key,
        "l": limit.limit,
        "n": limit.amount,
        "c": limit.commit,
        "t": limit.ttl or 0,
        "s": limit.seeded,
    }
    if limit.window_start is not None:  # absent rather than null: cjson's null is truthy in Lua
        encoded["w"] = limit.window_start
    return encoded


class RedisCounterStore:
    def __init__(self, url: str, *, timeout: float = 2.0, max_connections: int = 64) -> None:
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
        self._reserve = self._client.register_script(RESERVE)
        self._settle = self._client.register_script(SETTLE)
        self._seed = self._client.register_script(SEED)

    async def reserve(self, request_id: str, limits: list[Limit], *, now: float, hold_seconds: float) -> ReserveOutcome:
        payload = json.dumps([_encode(limit) for limit in limits])
        try:
            reply = await self._reserve(args=[payload, request_id, repr(now), repr(hold_seconds), SINCE])
        except RedisError as exc:
            raise CounterStoreError(f"Redis counter store: {exc}") from exc
        status = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        usage = tuple(int(value) for value in json.loads(reply[1]))
        if status == "missing":
            prefix = PREFIX + "u:"
            return ReserveOutcome(False, usage, missing=tuple(key[len(prefix) :] for key in json.loads(reply[2])))
        if status == "full":
            return ReserveOutcome(False, usage, failed=int(reply[2]))
        return ReserveOutcome(True, usage)

    async def settle(self, request_id: str, settlements: list[Settlement], *, now: float) -> None:
        payload = [{**_encode(s.limit), "n": s.actual} for s in settlements]
        try:
            await self._settle(args=[json.dumps(payload), request_id])
        except RedisError as exc:
            raise CounterStoreError(f"Redis counter store: {exc}") from exc

    async def seed(self, key: str, used: int, ttl: int | None, *, now: float) -> None:
        try:
            await self._seed(keys=[PREFIX + "u:" + key], args=[used, "" if ttl is None else ttl])
        except RedisError as exc:
            raise CounterStoreError(f"Redis counter store: {exc}") from exc

    async def ping(self, *, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._client.ping(), timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            raise CounterStoreError(f"Redis counter store: {exc or type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self._client.aclose(close_connection_pool=True)
