"""The Lua scripts of the Redis counter store, and the form their arguments take.

A limit travels as its static part, a JSON array encoded once per counter and window and cached (`hold key, add
key, limit, flags, ttl, window start, used...`). A request's limits go in one argument: a line of their amounts
(decimal numbers separated by spaces), then their static parts, a line each (compact JSON has no raw line break);
a request's settlement likewise, its id last, framed by its length in bytes (`frame`). A reservation is one
argument after its key: a line of its numbers and sizes, its request id, its limits, then the settlements riding
along; a batch of settlements is one argument of frames. So a request encodes nothing but its numbers, and every
call costs the same few arguments whatever its limits and whatever rides along: packing an argument costs the
client more than joining a few hundred bytes (hiredis formats each one's header with `sprintf`, some 1,500
instructions an argument). A counter is incremented by exactly the amount given. `used` is
`0` for the add key alone, `1, prefix, first, last` for the consecutive buckets of a rolling window (61 of them,
named by the script), or `2, key...`. Scripts run by `EVALSHA` on their digest and answer integers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from toolpolicy.counters.base import Limit
from toolpolicy.settings import DEFAULT_REDIS_PREFIX


class CounterKeys:
    """The names of the counters' keys under one deployment's prefix (made once: requests only read them)."""

    __slots__ = ("hold", "prefix", "since", "used")

    def __init__(self, prefix: str = DEFAULT_REDIS_PREFIX) -> None:
        self.prefix = prefix
        self.since = prefix + "since"
        """When this Redis began holding counters (set by the first reservation): a window begun later is complete
        in Redis, an older one may have lost usage in a restart and is re-seeded."""
        self.hold = prefix + "h:"
        self.used = prefix + "u:"


COMMIT, SEEDED, WINDOW_START = 1, 2, 4
"""Bits of a limit's flags."""
OK, FULL, MISSING = 1, 2, 3
"""The first integer of RESERVE's answer; the usage of each limit follows, then the failed limit's index (FULL)
or the missing buckets (MISSING)."""
SUMMARISED = 8
"""Closed buckets a rolling window needs for its sum to be kept in a summary key (`<prefix>sum`), read instead of
them; fewer are read one by one (see `ranged` in RESERVE)."""
CACHED_LIMITS = 4096
"""Static parts kept; the cache starts over when full (windows roll over, so old entries are dead weight)."""

_DECODE = """
-- Static parts decoded in this call, by their text: a request's settlement riding along with the next reservation
-- names the same counters as it (the same key, team and customer), and decoding costs more than the rest. Each is
-- decoded once into a table of its fields, and a limit is a table of its amount alone that reads the rest from it
-- (its metatable): a settlement or a reservation's limit makes two fields, not a dozen.
local decoded = {}
local function limit(static, amount)
  local l = decoded[static]
  if not l then
    local s = cjson.decode(static)
    l = {h = s[1], a = s[2], l = s[3], c = s[4] % 2 == 1, s = s[4] % 4 >= 2, t = s[5]}
    if s[4] >= 4 then l.w = s[6] end
    if s[7] == 0 then
      l.u = {l.a}
    elseif s[7] == 1 then
      l.p, l.f, l.la = s[8], s[9], s[10]  -- buckets l.p .. l.f through l.p .. l.la, named when read (see ranged)
    else
      l.u = {}
      for k = 8, #s do l.u[#l.u + 1] = s[k] end
    end
    l.__index = l
    decoded[static] = l
  end
  return setmetatable({ns = amount, n = tonumber(amount)}, l)
end
-- What this call has read or written of a bucket's `used` (by key) and of a rolling window's summary (by summary
-- key: {f, e, t}), kept up to date by every write of this call: a reservation carrying settlements reads the buckets
-- and summaries they have just committed to, and their commands' answers already say what it would read. The script
-- runs alone (and keys do not expire while it runs), so nothing else changes them meanwhile.
local used_of, summaries = {}, {}
local function summary(sk)
  local s = summaries[sk]
  if not s then
    local c = redis.call('HMGET', sk, 'f', 'e', 't')
    s = {f = tonumber(c[1]), e = tonumber(c[2]), t = tonumber(c[3])}
    summaries[sk] = s
  end
  return s
end
-- Whether a bucket exists: known without a command once this call has read or written its `used`.
local function exists(key)
  return used_of[key] ~= nil or redis.call('EXISTS', key) == 1
end
-- Commit l's amount to its add key. When that bucket is one of a rolling window's closed buckets its summary
-- counts (a late settlement, or a plan made before the window moved), the summary takes the amount too.
local function commit(l)
  local used = redis.call('HINCRBY', l.a, 'used', l.ns)
  used_of[l.a] = used
  -- A bucket lives for its TTL from when it was made (or from when it last held nothing): set when this commit is all
  -- it holds, not on every commit, which cost a command a limit a request.
  if l.t > 0 and used == l.n then redis.call('EXPIRE', l.a, l.t) end
  if l.p and string.sub(l.a, 1, #l.p) == l.p then
    local index, s = tonumber(string.sub(l.a, #l.p + 1)), summary(l.p .. 'sum')
    if index and s.f and s.f <= index and index <= s.e then s.t = redis.call('HINCRBY', l.p .. 'sum', 't', l.ns) end
  end
end
"""

_SWEEP = """
-- A hold is a member `<amount>:<request id>` of the sorted set `<hold key>:q`, scored by its deadline, and counts in
-- the hold key's hash field `__total`; so taking one is a ZADD and adds to `__total`, dropping one a ZREM and takes
-- from it (a call's changes to `__total` are written together, see `unwritten`), and a hold sent twice (a command
-- re-sent after a lost connection) is held once. Releases before 2026-12 kept the amount in a hash field per request
-- and the deadlines in `<hold key>:z`: a sweep also drops expired holds of those.
-- The hash also keeps `__next`, a bound no hold's deadline is below (the earliest left at the last sweep, lowered by
-- every new hold; NO_HOLDS when none was left), and `__keep`, when its keys expire: a request sweeps only once a
-- deadline may have passed, and sets the keys' TTL only when they would not outlive its own hold by half an hour.
local NO_HOLDS = '9e99'
local holds = {}  -- hold key -> {next = bound, keep = expiry} as this script last saw or set them
-- What this call added to (or took from) each hold key's `__total`, written once at its end (`write_totals`): a
-- settlement riding along drops its holds from the counters the reservation then holds on, so the two changes go
-- out as one HINCRBY (none at all when they cancel out). Whatever reads `__total` adds it (`sweep`).
local unwritten = {}
local function write_totals()
  for hk, delta in pairs(unwritten) do
    if delta ~= 0 then redis.call('HINCRBY', hk, '__total', string.format('%d', delta)) end
  end
  unwritten = {}
end
-- Drop the holds of zk whose deadline is past: their amounts, from the member's prefix (or, `legacy`, the hash).
local function drop_expired(hk, zk, now, legacy)
  local expired = redis.call('ZRANGEBYSCORE', zk, '-inf', now)
  if #expired == 0 then return end
  local total = 0
  for _, member in ipairs(expired) do
    if legacy then
      total = total + tonumber(redis.call('HGET', hk, member) or '0')
      redis.call('HDEL', hk, member)
    else
      total = total + tonumber(string.sub(member, 1, string.find(member, ':', 1, true) - 1))
    end
  end
  redis.call('ZREMRANGEBYSCORE', zk, '-inf', now)  -- the members just read: the script runs alone
  unwritten[hk] = (unwritten[hk] or 0) - total
end
local function earliest(zk)
  return tonumber(redis.call('ZRANGE', zk, 0, 0, 'WITHSCORES')[2] or NO_HOLDS)
end
local function sweep(hk, now)
  local c = redis.call('HMGET', hk, '__total', '__next', '__keep')
  local state = {next = tonumber(c[2]), keep = tonumber(c[3])}
  holds[hk] = state
  if not c[1] then return unwritten[hk] or 0 end  -- no hold was ever taken (or the keys expired): nothing to sweep
  if state.next and now < state.next then return tonumber(c[1]) + (unwritten[hk] or 0) end
  drop_expired(hk, hk .. ':q', now, false)
  drop_expired(hk, hk .. ':z', now, true)
  local first = math.min(earliest(hk .. ':q'), earliest(hk .. ':z'))
  redis.call('HSET', hk, '__next', first >= tonumber(NO_HOLDS) and NO_HOLDS or first)
  state.next = first
  return tonumber(c[1]) + (unwritten[hk] or 0)  -- what the sweep dropped is in `unwritten`
end
-- Hold l's amount for request rid until `deadline`, its score written out as `score` (made once for every hold of the
-- call).
local function hold(l, rid, now, deadline, score, hold_seconds)
  local zk = l.h .. ':q'
  if redis.call('ZADD', zk, score, l.ns .. ':' .. rid) == 1 then
    unwritten[l.h] = (unwritten[l.h] or 0) + l.n
  end
  local state = holds[l.h]
  local fields = {}
  if not state.next or deadline < state.next then
    state.next = deadline
    fields[#fields + 1], fields[#fields + 2] = '__next', deadline
  end
  local keep
  if not state.keep or state.keep < deadline + 1800 then  -- half an hour to spare, whatever the replicas' clocks
    keep = math.ceil(hold_seconds) + 3600
    state.keep = now + keep
    fields[#fields + 1], fields[#fields + 2] = '__keep', state.keep
  end
  if #fields > 0 then redis.call('HSET', l.h, unpack(fields)) end
  if keep then  -- after the HSET, which makes the hash when this is its first hold (`__total` is written last)
    redis.call('EXPIRE', l.h, keep)
    redis.call('EXPIRE', zk, keep)
  end
end
"""

_SETTLE_ALL = """
-- From `pos` on, `frames` holds requests' settlements, each framed as its length in bytes, a line break, then the
-- settlement: a line of 2n numbers (per settlement the amount to commit and the amount the request holds, 0: none),
-- then the n settlements' static parts, a line each (JSON has no raw line break), then the request id: the rest of
-- the frame, whatever its characters. Drops each request's hold and commits the amount (a seeded bucket only if it
-- exists).
local function settle_all(frames, pos)
  while pos <= #frames do
    local head = string.find(frames, '\\n', pos, true)
    local finish = head + tonumber(string.sub(frames, pos, head - 1))
    local block = string.sub(frames, head + 1, finish)
    pos = finish + 1
    local at = string.find(block, '\\n', 1, true)
    local settlements = {}
    for actual, held in string.gmatch(string.sub(block, 1, at - 1), '(%S+) (%S+)') do
      local stop = string.find(block, '\\n', at + 1, true)
      settlements[#settlements + 1] = {string.sub(block, at + 1, stop - 1), actual, held}
      at = stop
    end
    local rid = string.sub(block, at + 1)
    for _, s in ipairs(settlements) do
      local l, held = limit(s[1], s[2]), s[3]
      if held ~= '0' and redis.call('ZREM', l.h .. ':q', held .. ':' .. rid) == 1 then
        unwritten[l.h] = (unwritten[l.h] or 0) - tonumber(held)  -- held is the digits ZADD's member began with
      end
      if l.n ~= 0 and ((not l.s) or exists(l.a)) then commit(l) end
    end
  end
end
"""

RESERVE = (
    f"local SUMMARISED = {SUMMARISED}\n"
    + _DECODE
    + _SWEEP
    + _SETTLE_ALL
    + """
-- KEYS[1]: when this Redis began holding counters. ARGV[1], all in one argument: a line `now hold_seconds split
-- id_bytes limits_bytes`, then the request id, then the limits (a line of their amounts, separated by spaces, then
-- each limit's static part, a line each), then other requests' settlements riding along, framed (see settle_all),
-- applied first. With split > 0, limits 1..split are a first stage: checked and taken, then the rest is checked
-- against the counters as the first stage left them; when the rest has no room the first stays taken.
local body = ARGV[1]
local head = string.find(body, '\\n', 1, true)
local now_text, hold_text, split_text, rid_size, spec_size =
  string.match(string.sub(body, 1, head - 1), '(%S+) (%S+) (%S+) (%S+) (%S+)')
local rid_end = head + tonumber(rid_size)
local spec_end = rid_end + tonumber(spec_size)
local rid, spec = string.sub(body, head + 1, rid_end), string.sub(body, rid_end + 1, spec_end)
local now, hold_seconds, split = tonumber(now_text), tonumber(hold_text), tonumber(split_text)
settle_all(body, spec_end + 1)
local since = tonumber(redis.call('GET', KEYS[1]) or '')
if not since then
  -- This Redis holds no counters yet (first use, or restarted empty): they are complete from now on.
  since = now
  redis.call('SET', KEYS[1], now_text)
end
local limits = {}
local at = string.find(spec, '\\n', 1, true)
for amount in string.gmatch(string.sub(spec, 1, at - 1), '%S+') do
  local stop = string.find(spec, '\\n', at + 1, true) or #spec + 1
  limits[#limits + 1] = limit(string.sub(spec, at + 1, stop - 1), amount)
  at = stop
end
local function bucket(l, key, missing)
  local value = used_of[key]
  if value then return value end
  value = redis.call('HGET', key, 'used')
  if value then
    value = tonumber(value)
    used_of[key] = value
    return value
  end
  if l.s and l.w and l.w > since then
    redis.call('HSET', key, 'used', 0)  -- a window begun after: new, not lost
    used_of[key] = 0
    if l.t > 0 then redis.call('EXPIRE', key, l.t) end
  elseif l.s then
    missing[#missing + 1] = key
  end
  return 0
end
-- A rolling window (buckets named as a range) of at least SUMMARISED closed buckets keeps their sum in a summary
-- (hash l.p .. 'sum': f, the window's first bucket; e, the last one summed; t, the total), built from the buckets
-- when the window moves and kept exact by `commit`; so a request reads the summary and the current bucket instead
-- of every bucket (61 for a budget). A summary is built only when none of its buckets is missing.
local function ranged(l, missing)
  local sk = l.p .. 'sum'
  local s = summary(sk)
  local first, committed = l.f, 0
  if s.f == l.f and s.e and s.e < l.la then first, committed = s.e + 1, s.t end
  local lost = #missing
  for index = first, l.la - 1 do committed = committed + bucket(l, l.p .. index, missing) end
  if first == l.f and l.la - l.f >= SUMMARISED and l.t > 0 and #missing == lost then
    redis.call('HSET', sk, 'f', l.f, 'e', l.la - 1, 't', committed)
    redis.call('EXPIRE', sk, l.t)
    summaries[sk] = {f = l.f, e = l.la - 1, t = committed}
  end
  return committed + bucket(l, l.p .. l.la, missing)
end
local function measure(l, missing)
  local committed = 0
  if l.p then
    committed = ranged(l, missing)
  else
    for _, key in ipairs(l.u) do committed = committed + bucket(l, key, missing) end
  end
  if l.c then return committed end  -- a counted limit takes no holds (its hold key is its own): none to read
  return committed + sweep(l.h, now)
end
local usage, missing = {}, {}
for k, l in ipairs(limits) do usage[k] = measure(l, missing) end
local function answer(status, extra)
  write_totals()
  local reply = {status}
  for k = 1, #limits do reply[k + 1] = usage[k] end
  for _, value in ipairs(extra) do reply[#reply + 1] = value end
  return reply
end
if #missing > 0 then return answer(3, missing) end
local touched = {}
-- Holds end on a whole second, the first at or after now + hold seconds (a hold stands up to a second longer: an
-- over-count only): a sorted set keeps a whole score's text as an integer's, a fraction's through `%.17g`, which
-- cost each ZADD more than the rest of it.
local deadline = math.ceil(now + hold_seconds)
local score = string.format('%d', deadline)
local function stage(first, last)
  for k = first, last do
    if usage[k] + limits[k].n > limits[k].l then return k end
  end
  for k = first, last do
    local l = limits[k]
    if l.c then
      commit(l)
      touched[l.a] = true
    elseif l.n > 0 then
      hold(l, rid, now, deadline, score, hold_seconds)
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
    if l.p then
      for key in pairs(touched) do stale = stale or string.sub(key, 1, #l.p) == l.p end
    else
      for _, key in ipairs(l.u) do stale = stale or touched[key] end
    end
    if stale then usage[k] = measure(l, missing) end  -- the first stage changed what this limit counts
  end
  failed = stage(last + 1, #limits)
  if failed then return answer(2, {failed - 1}) end
end
return answer(1, {})
"""
)

SETTLE = (
    _DECODE
    + _SWEEP
    + _SETTLE_ALL
    + """
-- ARGV[1]: the settlements of any number of requests, framed (see settle_all).
settle_all(ARGV[1], 1)
write_totals()
return 1
"""
)

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


RESERVE_SCRIPT, SETTLE_SCRIPT, SEED_SCRIPT = Script.of(RESERVE), Script.of(SETTLE), Script.of(SEED)


def size(text: str) -> int:
    """`text`'s length in bytes as sent (UTF-8): its length when it is ASCII, as every text but an odd request id is
    (`isascii` reads a flag of the string, `encode` copies it)."""
    return len(text) if text.isascii() else len(text.encode())


def frame(block: str) -> str:
    """A settlement as RESERVE and SETTLE read it among others in one argument: its length in bytes, a line break,
    then itself."""
    return f"{size(block)}\n{block}"


class Joined(NamedTuple):
    """Limits and their texts in a script's argument (`StaticParts.joined`)."""

    limits: tuple[Limit, ...]
    """The Limit objects themselves: held, so their ids name them while the texts are remembered."""
    amounts: str
    """Their amounts, separated by spaces."""
    statics: str
    """Their static parts, a line each."""
    spec: str
    """The amounts' line and the static parts, as RESERVE reads them."""
    spec_size: int
    """`spec`'s length in bytes."""


class StaticParts:
    """Each limit's static part, encoded once per counter and window, its keys named under `keys`."""

    def __init__(self, keys: CounterKeys) -> None:
        self.keys = keys
        self._cache: dict[tuple[Any, ...], str] = {}
        self._by_limit: dict[int, tuple[Limit, str]] = {}
        """By the Limit object itself (held, so its id is not reused): a plan's limits are the same objects request
        after request while their amounts repeat (`toolpolicy.plan_cache`), found here without building a key."""
        self._joined: dict[tuple[int, ...], Joined] = {}
        """`joined`'s answers, by the ids of the limits (held in the answer, so no id is reused while it is kept)."""

    def __call__(self, limit: Limit) -> str:
        limit = limit.origin or limit  # the plan's own limit: the same static part, likely encoded already
        found = self._by_limit.get(id(limit))
        if found is not None and found[0] is limit:
            return found[1]
        encoded = self._encoded(limit)
        if len(self._by_limit) >= CACHED_LIMITS:
            self._by_limit.clear()
        self._by_limit[id(limit)] = (limit, encoded)
        return encoded

    def joined(self, limits: Sequence[Limit]) -> Joined:
        """`limits` with their amounts (a line's numbers) and their static parts (`lines`) as the scripts' arguments
        write them, remembered for these very Limit objects: a plan's limits come back together request after
        request (`toolpolicy.plan_cache`), and their texts depend on nothing else (a Limit is never changed)."""
        key = tuple(map(id, limits))
        found = self._joined.get(key)
        if found is None:
            if len(self._joined) >= CACHED_LIMITS:
                self._joined.clear()
            amounts = " ".join([str(limit.amount) for limit in limits])
            statics = self.lines(limits)
            spec = f"{amounts}\n{statics}"
            found = self._joined[key] = Joined(tuple(limits), amounts, statics, spec, size(spec))
        return found

    def lines(self, limits: Iterable[Limit]) -> str:
        """The static parts of `limits`, a line each: `__call__`'s usual case (a plan's limit seen before) written
        out, as a reservation or a settlement names several limits (a call each cost more than the lookup)."""
        by_limit = self._by_limit
        parts: list[str] = []
        for limit in limits:
            source = limit.origin or limit
            found = by_limit.get(id(source))
            parts.append(found[1] if found is not None and found[0] is source else self(source))
        return "\n".join(parts)

    def _encoded(self, limit: Limit) -> str:
        used = limit.used_keys
        key: tuple[Any, ...] = (limit.hold_key, limit.add_key, limit.limit, limit.commit, limit.seeded, limit.ttl)
        key += (limit.window_start, limit.used_prefix, used[0], used[-1], len(used))
        if len(used) > 2 and limit.used_prefix is None:
            key += used
        encoded = self._cache.get(key)
        if encoded is None:
            if len(self._cache) >= CACHED_LIMITS:
                self._cache.clear()
            encoded = self._cache[key] = encode(limit, self.keys)
        return encoded


def encode(limit: Limit, keys: CounterKeys) -> str:
    """A limit's static part (see the module's docstring)."""
    hold, used_prefix = keys.hold, keys.used
    flags = (COMMIT if limit.commit else 0) | (SEEDED if limit.seeded else 0)
    if limit.window_start is not None:
        flags |= WINDOW_START
    fields: list[Any] = [hold + limit.hold_key, used_prefix + limit.add_key, limit.limit, flags, limit.ttl or 0]
    fields.append(limit.window_start or 0)
    used = limit.used_keys
    if len(used) == 1 and used[0] == limit.add_key:
        fields.append(0)
    elif limit.used_prefix is not None:
        start = len(limit.used_prefix)
        fields += (1, used_prefix + limit.used_prefix, int(used[0][start:]), int(used[-1][start:]))
    else:
        fields += (2, *(used_prefix + key for key in used))
    return json.dumps(fields, separators=(",", ":"))
