"""Queued settlements in Redis: carried by the next reservation, never lost to a failed call or to shutdown."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from tests.toolpolicy.counters.test_stores import NOW, counted, held, name, usage
from tests.toolpolicy.limits_support import RedisServer
from toolpolicy.counters.base import CounterStoreError, Settlement
from toolpolicy.counters.redis import RedisCounterStore
from toolpolicy.counters.settle_queue import SettleQueue

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def test_a_settlement_counts_for_the_next_reservation_without_a_call_of_its_own(
    private_redis: RedisServer,
) -> None:
    store = RedisCounterStore(private_redis.url, settle_interval=3600)  # no tick: only reservations carry it
    budget = held(name("budget"), 10, 10)
    try:
        first = uuid.uuid4().hex
        assert (await store.reserve(first, [budget], now=NOW, hold_seconds=60)).ok
        await store.settle(first, [Settlement(budget, 4)], now=NOW)
        assert store.settles.sent_alone == 0
        assert await usage(store, budget) == 4  # the hold of 10 is gone, 4 committed
        assert (await store.reserve(uuid.uuid4().hex, [held(budget.hold_key, 10, 6)], now=NOW, hold_seconds=60)).ok
        assert store.settles.sent_alone == 0
    finally:
        await store.aclose()


async def test_settlements_of_several_requests_and_limits_carried_together_each_land_on_their_own(
    private_redis: RedisServer,
) -> None:
    store = RedisCounterStore(private_redis.url, settle_interval=3600)  # no tick: the reservation carries them all
    tokens, budget, requests = held(name("tokens"), 100, 30), held(name("budget"), 1000, 500), counted(name("n"), 9, 1)
    try:
        assert (await store.reserve("r1", [requests, tokens, budget], now=NOW, hold_seconds=60)).ok
        assert (await store.reserve("r2", [budget], now=NOW, hold_seconds=60)).ok
        # r1 commits less than it held on two limits (its counted request stays counted); r2 is released.
        await store.settle("r1", [Settlement(tokens, 12), Settlement(budget, 345)], now=NOW)
        await store.settle("r2", [Settlement(budget, 0)], now=NOW)
        outcome = await store.reserve("r3", [requests, tokens, budget], now=NOW, hold_seconds=60)
        assert (outcome.ok, outcome.usage) == (True, (1, 12, 345))  # every hold gone, each commit on its own limit
        assert store.settles.sent_alone == 0
    finally:
        await store.aclose()


async def test_settlements_a_failed_reservation_carried_go_with_the_next_call(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisCounterStore(private_redis.url, timeout=0.5, settle_interval=3600)
    budget = held(name("budget"), 100, 10)
    try:
        request = uuid.uuid4().hex
        assert (await store.reserve(request, [budget], now=NOW, hold_seconds=60)).ok
        await store.settle(request, [Settlement(budget, 4)], now=NOW)
        private_redis.stop()
        with pytest.raises(CounterStoreError):
            await store.reserve(uuid.uuid4().hex, [budget], now=NOW, hold_seconds=60)
        private_redis.start()  # empty: the hold is gone with it, the usage is still to commit
        await store.flush()
        assert await usage(store, budget) == 4
        # Redis down for the queue's own call: logged and dropped, as a failed settlement on the request path was
        # (the holds expire, the ledger and the rate journal keep the usage); the flush itself does not fail.
        await store.settle(uuid.uuid4().hex, [Settlement(budget, 5)], now=NOW)
        private_redis.stop()
        with caplog.at_level(logging.ERROR, "toolpolicy.counters.settle_queue"):
            await store.flush()
        assert "could not settle 1 queued requests" in caplog.text
        private_redis.start()
        calls = store.settles.sent_alone
        await store.flush()
        assert store.settles.sent_alone == calls  # dropped: nothing left to send
    finally:
        await store.aclose()


async def test_closing_the_store_sends_what_is_queued(private_redis: RedisServer) -> None:
    store = RedisCounterStore(private_redis.url, settle_interval=3600)
    budget = held(name("budget"), 100, 10)
    requests = [uuid.uuid4().hex for _ in range(3)]
    for request in requests:
        assert (await store.reserve(request, [budget], now=NOW, hold_seconds=60)).ok
    for request in requests:
        await store.settle(request, [Settlement(budget, 2)], now=NOW)
    await store.aclose()
    assert store.settles.sent_alone == 1
    reopened = RedisCounterStore(private_redis.url)
    try:
        assert await usage(reopened, budget) == 6
    finally:
        await reopened.aclose()


async def test_a_reservation_takes_nothing_while_a_tick_is_sending_and_what_came_after_once_it_landed() -> None:
    sending, landed = asyncio.Event(), asyncio.Event()
    sent: list[list[str]] = []

    async def send(args: list[str]) -> None:
        sent.append(args)
        sending.set()
        await landed.wait()

    queue = SettleQueue(send, interval=3600)
    queue.add("first")
    flushing = asyncio.ensure_future(queue.flush())
    await sending.wait()
    queue.add("second")
    assert queue.take_now() is None  # the tick's call is on the wire: a reservation must wait for it
    taking = asyncio.ensure_future(queue.take())
    await asyncio.sleep(0)
    assert not taking.done()
    landed.set()
    assert await taking == ["second"]
    await flushing
    assert sent[0] == ["first"]
    assert queue.take_now() == []
    await queue.aclose()


async def test_a_settlement_finds_its_hold_whatever_characters_its_request_id_has(private_redis: RedisServer) -> None:
    # A settlement travels as one argument with the id last, after lines of JSON: an id with line breaks, spaces or
    # a colon must still name the hold its reservation took.
    store = RedisCounterStore(private_redis.url, settle_interval=3600)
    budget = held(name("budget"), 100, 10)
    try:
        odd = "a b\nc:d\n"
        assert (await store.reserve(odd, [budget], now=NOW, hold_seconds=60)).ok
        await store.settle(odd, [Settlement(budget, 3)], now=NOW)
        await store.flush()
        assert await usage(store, budget) == 3  # the hold of 10 dropped, 3 committed
    finally:
        await store.aclose()


async def test_a_tick_sends_only_what_waited_a_whole_interval_and_leaves_the_rest_to_the_next_reservation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    clock = [start]
    monkeypatch.setattr(loop, "time", lambda: clock[0])  # the loop's timers run by this clock, moved by `at`
    sent: list[list[str]] = []

    async def send(args: list[str]) -> None:
        sent.append(args)

    async def at(seconds: float) -> None:
        clock[0] = start + seconds
        for _ in range(5):  # the timers due by then, and the call a tick starts
            await asyncio.sleep(0)

    queue = SettleQueue(send, interval=1.0)
    queue.add("a")  # the timer is set: due at 1
    assert queue.take_now() == ["a"]  # a reservation carried it
    await at(0.6)
    queue.add("b")
    await at(1.0)
    assert sent == []  # b has waited 0.4 of its interval: left for a reservation
    await at(1.3)
    queue.add("c")
    # Just past b's interval (not at 1.6 itself: the loop runs a timer once its time is before now plus the clock's
    # 1 ns resolution, which rounds away at ~1.8e9 s, the monotonic clock under libfaketime's dates).
    await at(1.61)  # b's interval is over and no reservation came: b goes, and c (queued since) with it
    assert (sent, queue.sent_alone) == ([["b", "c"]], 1)
    queue.add("d")
    await at(2.5)
    assert queue.take_now() == ["d"]
    await at(5.0)
    assert (sent, queue.sent_alone) == ([["b", "c"]], 1)  # nothing left: no more calls
    await queue.aclose()


async def test_request_ids_of_any_characters_are_framed_apart_whether_carried_or_sent_alone(
    private_redis: RedisServer,
) -> None:
    """Settlements travel framed by their length in bytes, several to an argument: ids with line breaks, spaces and
    multi-byte characters end where their frame does, and each drops its own hold."""
    store = RedisCounterStore(private_redis.url, settle_interval=3600)
    budget = held(name("budget"), 1000, 100)
    odd = ["réq 1\n2", "\n", "ünï\ncødé 3 4", "r\n0 0\n"]
    try:
        for request_id in odd:
            assert (await store.reserve(request_id, [budget], now=NOW, hold_seconds=60)).ok
        await store.settle(odd[0], [Settlement(budget, 7)], now=NOW)
        await store.settle(odd[1], [Settlement(budget, 0)], now=NOW)
        # Carried by a reservation whose own id is odd too.
        outcome = await store.reserve("ø\n9", [held(budget.hold_key, 1000, 1)], now=NOW, hold_seconds=60)
        assert (outcome.ok, outcome.usage) == (True, (7 + 200,))  # two holds of 100 stand, 7 committed
        await store.settle(odd[2], [Settlement(budget, 5)], now=NOW)
        await store.settle(odd[3], [Settlement(budget, 3)], now=NOW)
        await store.flush()  # sent alone, in one call
        assert store.settles.sent_alone == 1
        assert await usage(store, budget) == 7 + 5 + 3 + 1  # only the last reservation's hold of 1 stands
    finally:
        await store.aclose()
