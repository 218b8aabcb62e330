"""A limit's static part, as the Redis scripts read it: encoded once, the same for every amount, never stale."""

from __future__ import annotations

from dataclasses import replace

from toolpolicy.counters.base import Limit
from toolpolicy.counters.redis_scripts import CounterKeys, StaticParts, encode


def test_a_limit_is_encoded_as_its_fields_whatever_its_amount_and_however_often_it_is_asked_for() -> None:
    parts = StaticParts(CounterKeys("p:"))
    limit = Limit("rl:k:-:requests:60", ("rl:k:-:requests:60:60s@1",), "rl:k:-:requests:60:60s@1", 100, 1, True, 120)
    first = parts(limit)
    assert first == ("7", "p:h:rl:k:-:requests:60", "p:u:rl:k:-:requests:60:60s@1", "100", "1", "120", "0", "0")
    assert parts(limit) is first
    assert parts(replace(limit, amount=7)) == first  # another object, another amount: the same static part


def test_a_limit_changed_in_anything_but_its_amount_gets_its_own_encoding() -> None:
    keys = CounterKeys("p:")
    parts = StaticParts(keys)
    limit = Limit("b:key:k:-:life", ("b:key:k:-:life",), "b:key:k:-:life", 10**9, 5, ttl=None, seeded=True)
    parts(limit)
    for changed in (replace(limit, limit=2 * 10**9), replace(limit, ttl=60), replace(limit, commit=True)):
        assert parts(changed) == encode(changed, keys) != encode(limit, keys)


def test_a_rolling_window_names_its_range_and_a_window_start_is_kept_exact() -> None:
    keys = tuple(f"b:team:t:-:1dr@{index}" for index in range(7, 68))
    limit = Limit("b:team:t:-:1dr", keys, keys[-1], 10**15, 5, ttl=174240, seeded=True, used_prefix="b:team:t:-:1dr@")
    assert encode(limit, CounterKeys("p:")) == (
        *("10", "p:h:b:team:t:-:1dr", "p:u:b:team:t:-:1dr@67", "1000000000000000", "2", "174240", "0"),
        *("1", "p:u:b:team:t:-:1dr@", "7", "67"),
    )
    minute = Limit("rl:k", ("rl:k@1",), "rl:k@1", 100, 1, True, 120, window_start=1796580060.0)
    assert encode(minute, CounterKeys("p:"))[4:7] == ("5", "120", "1796580060.0")


def test_a_window_of_named_keys_lists_them_all() -> None:
    limit = Limit("x", ("x@1", "x@2", "x@3"), "x@3", 10, 1, ttl=60)
    assert encode(limit, CounterKeys("p:")) == (
        "10",
        "p:h:x",
        "p:u:x@3",
        "10",
        "0",
        "60",
        "0",
        "2",
        "p:u:x@1",
        "p:u:x@2",
        "p:u:x@3",
    )
