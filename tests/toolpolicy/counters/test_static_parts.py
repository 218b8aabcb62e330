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
    seen=st.integers(min_value=0, max_value=6),
    again=st.lists(st.integers(min_value=0, max_value=5), max_size=8),
)
def test_joined_texts_are_each_limits_amount_and_static_part_however_the_limits_were_met_before(
    picks: list[int], seen: int, again: list[int]
) -> None:
    """`joined` (remembered by the limits' ids) and `lines` (the usual case written out) against `encode` per limit:
    with some limits seen before and some not, the same limit more than once, lists asked for again, and equal
    limits that are other objects."""
    keys = CounterKeys("p:")
    parts = StaticParts(keys)

    def limit(n: int) -> Limit:
        return Limit(f"rl:k:-:requests:{n}", (f"u{n}",), f"u{n}", 100 + n, n, n % 2 == 0, 120)

    pool = [limit(n) for n in range(6)]
    for item in pool[:seen]:
        parts(item)
    for chosen in (picks, again, picks):
        for limits in ([pool[pick] for pick in chosen], [limit(pick) for pick in chosen]):
            joined = parts.joined(limits)
            assert joined.limits == tuple(limits)
            assert joined.amounts == " ".join(str(item.amount) for item in limits)
            assert joined.statics == parts.lines(limits) == "\n".join(encode(item, keys) for item in limits)
