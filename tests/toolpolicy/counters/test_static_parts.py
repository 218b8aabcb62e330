"""A limit's static part, as the Redis scripts read it: encoded once, the same for every amount, never stale."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, strategies as st

from toolpolicy.counters.base import Limit
from toolpolicy.counters.redis_scripts import CounterKeys, StaticParts, encode


def test_a_limit_is_encoded_as_its_fields_whatever_its_amount_and_however_often_it_is_asked_for() -> None:
    parts = StaticParts(CounterKeys("p:"))
    limit = Limit("rl:k:-:requests:60", ("rl:k:-:requests:60:60s@1",), "rl:k:-:requests:60:60s@1", 100, 1, True, 120)
    first = parts(limit)
    assert json.loads(first) == ["p:h:rl:k:-:requests:60", "p:u:rl:k:-:requests:60:60s@1", 100, 1, 120, 0, 0]
    assert parts(limit) is first
    assert parts(replace(limit, amount=7)) == first  # another object, another amount: the same static part


def test_a_limit_changed_in_anything_but_its_amount_gets_its_own_encoding() -> None:
    keys = CounterKeys("p:")
    parts = StaticParts(keys)
    limit = Limit("b:key:k:-:life", ("b:key:k:-:life",), "b:key:k:-:life", 10**9, 5, ttl=None, seeded=True)
    parts(limit)
    for changed in (replace(limit, limit=2 * 10**9), replace(limit, ttl=60), replace(limit, commit=True)):
        assert parts(changed) == encode(changed, keys) != encode(limit, keys)


@given(
    picks=st.lists(st.integers(min_value=0, max_value=5), max_size=8),
    last=st.none() | st.text(max_size=12),
    seen=st.integers(min_value=0, max_value=6),
)
def test_lines_are_each_limits_static_part_a_line_each_then_the_last_line(
    picks: list[int], last: str | None, seen: int
) -> None:
    """`lines` (the usual case written out) against `__call__` per limit, with some limits seen before and some
    not, and the same limit more than once."""
    keys = CounterKeys("p:")
    parts = StaticParts(keys)
    pool = [Limit(f"rl:k:-:requests:{n}", (f"u{n}",), f"u{n}", 100 + n, n, n % 2 == 0, 120) for n in range(6)]
    for limit in pool[:seen]:
        parts(limit)
    limits = [pool[pick] for pick in picks]
    expected = [encode(limit, keys) for limit in limits] + ([] if last is None else [last])
    assert parts.lines(limits, last) == "\n".join(expected)
