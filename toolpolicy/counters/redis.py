"""Counters in Redis, shared by every replica: each check-and-reserve is one Lua script, so it is atomic.

Keys (prefix `isthmus:`): `u:<bucket>` is a hash whose `used` field is committed usage; `h:<limit>` a hash of holds
by request id plus `__total`, with `h:<limit>:z` a sorted set of their deadlines; `since` when this Redis began
holding counters. Redis Cluster is not supported: the scripts name keys they compute (single-node and replicated
setups are).

The scripts take flat arguments rather than JSON (nothing to encode per request but the numbers and key names),
run by `EVALSHA` on their digest (loaded again when Redis answers `NOSCRIPT`, e.g. after a restart), and answer
integers. A limit travels as `hold key, add key, limit, amount, flags, ttl, window start, used`, where `used` is
`0` for the add key alone, `-1 prefix first last` for the consecutive buckets of a rolling window, or
`n key1 ... keyn`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, NoScriptError, RedisError

from toolpolicy.counters.base import CounterStoreError, Limit, ReserveOutcome, Settlement

PREFIX = "isthmus:"
SINCE = PREFIX + "since"
"""When this Redis began holding counters (set by the first reservation): a window begun later is complete in
Redis, an older one may have lost usage in a restart and is re-seeded."""
_HOLD = PREFIX + "h:"
_USED = PREFIX + "u:"
_COMMIT, _SEEDED = 1, 2
"""Bits of a limit's flags."""
OK, FULL, MISSING = 1, 2, 3
"""The first integer of RESERVE's answer; the usage of each limit follows, then the failed limit's index (FULL)
or the missing buckets (MISSING)."""

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
-- KEYS[1]: when this Redis began holding counters. ARGV: request id, now, hold seconds, split, then the limits.
-- With split > 0, limits 1..split are a first stage: checked and taken, then the rest is checked against the
-- counters as the first stage left them; when the rest has no room the first stage stays taken.
local rid, now, hold_seconds, split = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local since = tonumber(redis.call('GET', KEYS[1]) or '')
if not since then
  -- This Redis holds no counters yet (first use, or restarted empty): they are complete from now on.
  since = now
  redis.call('SET', KEYS[1], ARGV[2])
end
local limits, i = {}, 5
while i <= #ARGV do
  local flags = tonumber(ARGV[i + 4])
  local l = {h = ARGV[i], a = ARGV[i + 1], l = tonumber(ARGV[i + 2]), ns = ARGV[i + 3], n = tonumber(ARGV[i + 3]),
             c = flags % 2 == 1, s = flags >= 2, t = tonumber(ARGV[i + 5]), w = tonumber(ARGV[i + 6]), u = {}}
  local count = tonumber(ARGV[i + 7])
  i = i + 8
  if count == 0 then
    l.u[1] = l.a
  elseif count < 0 then
    local prefix = ARGV[i]
    for bucket = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]) do l.u[#l.u + 1] = prefix .. bucket end
    i = i + 3
  else
    for k = 0, count - 1 do l.u[k + 1] = ARGV[i + k] end
    i = i + count
  end
  limits[#limits + 1] = l
end
local function measure(l, missing)
  local committed = 0
  for _, key in ipairs(l.u) do
    local value = redis.call('HGET', key, 'used')
    if value then
      committed = committed + tonumber(value)
    elseif l.s and l.w and l.w > since then
      redis.call('HSET', key, 'used', 0)  -- a window begun after: new, not lost
      if l.t > 0 then redis.call('EXPIRE', key, l.t) end
    elseif l.s then
      missing[#missing + 1] = key
    end
  end
  return committed + sweep(l.h, now)
end
local usage, missing = {}, {}
for k, l in ipairs(limits) do usage[k] = measure(l, missing) end
local function answer(status, extra)
  local reply = {status}
  for k = 1, #limits do reply[k + 1] = usage[k] end
  for _, value in ipairs(extra) do reply[#reply + 1] = value end
  return reply
end
if #missing > 0 then return answer(3, missing) end
local touched = {}
local function stage(first, last)
  for k = first, last do
    if usage[k] + limits[k].n > limits[k].l then return k end
  end
  for k = first, last do
    local l = limits[k]
    if l.c then
      redis.call('HINCRBY', l.a, 'used', l.ns)
      if l.t > 0 then redis.call('EXPIRE', l.a, l.t) end
      touched[l.a] = true
    elseif l.n > 0 then
      redis.call('HINCRBY', l.h, rid, l.ns)
      redis.call('HINCRBY', l.h, '__total', l.ns)
      redis.call('ZADD', l.h .. ':z', now + hold_seconds, rid)
      local keep = math.ceil(hold_seconds) + 3600
      redis.call('EXPIRE', l.h, keep)
      redis.call('EXPIRE', l.h .. ':z', keep)
      touched[l.h] = true
    end
  end
  return nil
end
local last = (split > 0 and split < #limits) and split or #limits
local failed = stage(1, last)
if failed then return answer(2, {failed - 1}) end
if last < #limits then
  for k = last + 1, #limits do
    local l = limits[k]
    local stale = touched[l.h]
    for _, key in ipairs(l.u) do stale = stale or touched[key] end
    if stale then usage[k] = measure(l, missing) end  -- the first stage changed what this limit counts
  end
  failed = stage(last + 1, #limits)
  if failed then return answer(2, {failed - 1}) end
end
return answer(1, {})
"""
)

SETTLE = """
-- ARGV: request id, then per settlement: hold key, add key, amount to commit, seeded (1/0), ttl.
local rid = ARGV[1]
for i = 2, #ARGV, 5 do
  local h, a, n = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local held = redis.call('HGET', h, rid)
  if held then
    redis.call('HDEL', h, rid)
    redis.call('HINCRBY', h, '__total', -tonumber(held))
    redis.call('ZREM', h .. ':z', rid)
  end
  if n ~= '0' and (ARGV[i + 3] == '0' or redis.call('EXISTS', a) == 1) then
    redis.call('HINCRBY', a, 'used', n)
    local ttl = tonumber(ARGV[i + 4])
    if ttl > 0 then redis.call('EXPIRE', a, ttl) end
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


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> Script:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())


_RESERVE, _SETTLE, _SEED = Script.of(RESERVE), Script.of(SETTLE), Script.of(SEED)


def reserve_args(limit: Limit, args: list[Any]) -> None:
    """Append `limit` in RESERVE's form to `args`."""
    flags = (_COMMIT if limit.commit else 0) | (_SEEDED if limit.seeded else 0)
    window_start = "" if limit.window_start is None else repr(limit.window_start)
    args += (_HOLD + limit.hold_key, _USED + limit.add_key, limit.limit, limit.amount, flags, limit.ttl or 0)
    used = limit.used_keys
    if len(used) == 1 and used[0] == limit.add_key:
        args += (window_start, 0)
    elif limit.used_prefix is not None:
        start = len(limit.used_prefix)
        args += (window_start, -1, _USED + limit.used_prefix, int(used[0][start:]), int(used[-1][start:]))
    else:
        args += (window_start, len(used), *(_USED + key for key in used))


def settle_args(settlement: Settlement, args: list[Any]) -> None:
    """Append `settlement` in SETTLE's form to `args`."""
    limit = settlement.limit
    args += (_HOLD + limit.hold_key, _USED + limit.add_key, settlement.actual, 1 if limit.seeded else 0, limit.ttl or 0)


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
        self._execute: Callable[..., Awaitable[Any]] = self._client.execute_command
        """The client's command entry point, without the per-command wrappers of its `evalsha`."""

    async def _run(self, script: Script, keys: Sequence[str], args: list[Any]) -> Any:
        """One round trip in the usual case: EVALSHA, and the script itself only when Redis does not know it."""
        try:
            try:
                return await self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
            except NoScriptError:
                await self._execute("SCRIPT LOAD", script.source)
                return await self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except RedisError as exc:
            raise CounterStoreError(f"Redis counter store: {exc}") from exc

    async def reserve(
        self, request_id: str, limits: list[Limit], *, now: float, hold_seconds: float, split: int = 0
    ) -> ReserveOutcome:
        args: list[Any] = [request_id, repr(now), repr(hold_seconds), split]
        for limit in limits:
            reserve_args(limit, args)
        reply = await self._run(_RESERVE, (SINCE,), args)
        count = len(limits)
        status, usage = reply[0], tuple(reply[1 : count + 1])
        if status == MISSING:
            start = len(_USED)
            names = (key.decode() if isinstance(key, bytes) else key for key in reply[count + 1 :])
            return ReserveOutcome(False, usage, missing=tuple(name[start:] for name in names))
        if status == FULL:
            return ReserveOutcome(False, usage, failed=reply[count + 1])
        return ReserveOutcome(True, usage)

    async def settle(self, request_id: str, settlements: list[Settlement], *, now: float) -> None:
        args: list[Any] = [request_id]
        for settlement in settlements:
            settle_args(settlement, args)
        await self._run(_SETTLE, (), args)

    async def seed(self, key: str, used: int, ttl: int | None, *, now: float) -> None:
        await self._run(_SEED, (_USED + key,), [used, "" if ttl is None else ttl])

    async def ping(self, *, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._client.ping(), timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            raise CounterStoreError(f"Redis counter store: {exc or type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self._client.aclose(close_connection_pool=True)
