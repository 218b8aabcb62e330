"""The rate journal keeps exactly what the counters count, so counters that restart empty are seeded to it."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from toolpolicy.counters.base import Limit, Settlement
from toolpolicy.counters.journaled import JournaledCounterStore, seed_rate_buckets
from toolpolicy.counters.memory import MemoryCounterStore
from toolpolicy.store import Store
from toolpolicy.store.rate_journal import RateEntry, RateJournal

pytestmark = pytest.mark.anyio

WINDOW_START = 1_795_000_000.0
TOKENS = "rl:k:-:tokens:3600:3600s@498611"
REQUESTS = "rl:k:-:requests:3600:3600s@498611"


@pytest.fixture
def journal(migrated_store: Store) -> RateJournal:
    return RateJournal(migrated_store)


def limits(tokens: int, requests: int = 1) -> list[Limit]:
    common = {"ttl": 3660, "seeded": True, "window_start": WINDOW_START, "journaled": True}
    return [
        Limit(REQUESTS, (REQUESTS,), REQUESTS, limit=40, amount=requests, commit=True, **common),  # type: ignore[arg-type]
        Limit(TOKENS, (TOKENS,), TOKENS, limit=300, amount=tokens, **common),  # type: ignore[arg-type]
    ]


async def usage(store: MemoryCounterStore, now: float) -> tuple[int, ...]:
    """Committed plus held, per limit, as a reservation of nothing sees it."""
    # Settled usage may pass a limit (a provider reported more than was held): probe with no limit.
    probe = [replace(limit, limit=10**9) for limit in limits(0, 0)]
    outcome = await store.reserve("probe", probe, now=now, hold_seconds=60)
    assert outcome.ok, outcome
    return outcome.usage


@pytest.mark.parametrize("seed", range(4))
async def test_the_journal_matches_the_counters_through_random_traffic(journal: RateJournal, seed: int) -> None:
    rng = random.Random(seed)
    counters = MemoryCounterStore()
    store = JournaledCounterStore(counters, journal)
    in_flight: dict[str, list[Limit]] = {}
    now = WINDOW_START - 1  # the counters start before the window, which is new to them: nothing to seed
    assert (await store.reserve("first", limits(0), now=now, hold_seconds=600)).ok
    for step in range(150):
        now = WINDOW_START + step
        if in_flight and rng.random() < 0.5:
            request_id = rng.choice(sorted(in_flight))
            held = in_flight.pop(request_id)
            actual = 0 if rng.random() < 0.2 else rng.randint(0, 30)  # released, or settled (even above its hold)
            # As the governor settles: request counts stay as counted, token holds become the actual usage.
            await store.settle(request_id, [Settlement(held[0], 0), Settlement(held[1], actual)], now=now)
        else:
            request_id = f"r{step}"
            wanted = limits(rng.randint(1, 25))
            outcome = await store.reserve(request_id, wanted, now=now, hold_seconds=600)
            if outcome.ok:
                in_flight[request_id] = wanted
        if step % 25 == 0:
            await journal.flush()
    await journal.flush()
    expected = await usage(counters, now)
    assert await journal.totals([REQUESTS, TOKENS]) == {REQUESTS: expected[0], TOKENS: expected[1]}

    # The counters restart empty: seeded from the journal, they count what they counted, holds in flight included.
    restarted = MemoryCounterStore()
    later = now + 1
    outcome = await restarted.reserve("after", limits(1), now=later, hold_seconds=600)
    assert outcome.missing == (REQUESTS, TOKENS)
    await seed_rate_buckets(restarted, journal, {REQUESTS: 3660, TOKENS: 3660}, now=later)
    assert await usage(restarted, later) == expected


async def test_a_refused_reservation_is_not_journaled(journal: RateJournal) -> None:
    counters = MemoryCounterStore()
    store = JournaledCounterStore(counters, journal)
    await seed_rate_buckets(counters, journal, {REQUESTS: 3660, TOKENS: 3660}, now=WINDOW_START)
    assert (await store.reserve("big", limits(301), now=WINDOW_START, hold_seconds=60)).failed == 1
    await journal.flush()
    assert await journal.totals([REQUESTS, TOKENS]) == {}


async def test_rows_of_windows_that_are_over_are_pruned(journal: RateJournal) -> None:
    journal.record("old", 3, at=WINDOW_START, expires_at=WINDOW_START + 60)
    journal.record("new", 2, at=WINDOW_START, expires_at=WINDOW_START + 3660)
    await journal.flush()
    journal.record("new", 1, at=WINDOW_START + 120, expires_at=WINDOW_START + 3660)
    await journal.flush()
    assert await journal.totals(["old", "new"]) == {"new": 3}


async def test_a_buckets_records_wait_as_one_sum(journal: RateJournal) -> None:
    for step in range(100):
        journal.record(TOKENS, 7 if step % 2 else -3, at=WINDOW_START + step, expires_at=WINDOW_START + 3660)
    journal.record(REQUESTS, 1, at=WINDOW_START, expires_at=WINDOW_START + 3660)
    assert journal.writer.pending == 2  # one item per bucket, however many requests recorded
    await journal.flush()
    assert journal.writer.pending == 0
    assert await journal.totals([TOKENS, REQUESTS]) == {TOKENS: 50 * 7 - 50 * 3, REQUESTS: 1}


async def test_what_is_recorded_while_a_write_is_under_way_is_written_next(
    journal: RateJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = journal.write

    async def write_while_recording(entries: list[RateEntry]) -> None:
        journal.record(TOKENS, 5, at=WINDOW_START, expires_at=WINDOW_START + 3660)  # lands mid-write
        await write(entries)

    monkeypatch.setattr(journal, "write", write_while_recording)
    journal.record(TOKENS, 10, at=WINDOW_START, expires_at=WINDOW_START + 3660)
    await journal.flush()
    assert await journal.totals([TOKENS]) == {TOKENS: 10}
    assert journal.writer.pending == 1  # the 5 waits for the next write, as its own item
    monkeypatch.setattr(journal, "write", write)
    await journal.flush()
    assert await journal.totals([TOKENS]) == {TOKENS: 15}


async def test_a_bucket_the_store_rejects_is_dropped_and_the_others_are_written(journal: RateJournal) -> None:
    bad = "rl:k:\ud800:tokens:3600:3600s@498611"  # a lone surrogate: SQLite cannot encode it
    journal.record(bad, 4, at=WINDOW_START, expires_at=WINDOW_START + 3660)
    journal.record(TOKENS, 3, at=WINDOW_START, expires_at=WINDOW_START + 3660)
    await journal.flush()
    assert journal.writer.dropped == 1
    assert journal.writer.pending == 0
    journal.record(bad, 1, at=WINDOW_START, expires_at=WINDOW_START + 3660)  # a new sum, a new item
    journal.record(TOKENS, 2, at=WINDOW_START, expires_at=WINDOW_START + 3660)
    assert journal.writer.pending == 2
    await journal.flush()
    assert await journal.totals([TOKENS]) == {TOKENS: 5}
    assert journal.writer.dropped == 2


async def test_a_bucket_a_full_buffer_dropped_is_written_again_from_its_next_record(migrated_store: Store) -> None:
    journal = RateJournal(migrated_store, max_buffer=3)
    buckets = [f"rl:k:-:tokens:3600:3600s@49861{n}" for n in range(4)]
    for bucket in buckets:  # the store unreachable meanwhile: the oldest waiting bucket is dropped, with its sum
        journal.record(bucket, 10, at=WINDOW_START, expires_at=WINDOW_START + 3660)
    assert journal.writer.dropped == 1 and journal.writer.pending == 3
    await journal.flush()  # the store is back
    journal.record(buckets[0], 5, at=WINDOW_START, expires_at=WINDOW_START + 3660)
    await journal.flush()
    assert await journal.totals(buckets) == {buckets[0]: 5, buckets[1]: 10, buckets[2]: 10, buckets[3]: 10}
