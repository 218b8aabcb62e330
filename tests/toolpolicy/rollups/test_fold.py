from datetime import timedelta
from decimal import Decimal

import pytest

from tests.toolpolicy.rollups.support import T0 as BASE, record as base_record
from toolpolicy.audit import AuditRecord
from toolpolicy.rollups import HISTOGRAM_BUCKETS, RollupGroup, Totals, fold, percentile
from toolpolicy.rollups.fold import ALL, BY_KEY, BY_TARGET, Pairs, grains, latency_bucket, tally

T0 = BASE.replace(minute=15)


def record(**fields: object) -> AuditRecord:
    return base_record(**{"ts": T0, "latency_ms": 12.0, **fields})


def test_records_of_one_hour_key_and_target_fold_into_one_group_a_grain_with_their_sums() -> None:
    groups = fold(
        [
            record(tokens_in=10, tokens_out=5, cost_usd=Decimal("0.25")),
            record(ts=T0.replace(minute=59), status=502, latency_ms=700, details={"cache": "hit"}),
        ]
    )
    hour = T0.replace(minute=0)
    assert sorted(groups) == [
        RollupGroup(hour, "llm", BY_KEY, "bot", ""),
        RollupGroup(hour, "llm", BY_TARGET, "", "echo/echo-1"),
        RollupGroup(hour, "llm", ALL, "", ""),
    ]
    for totals in groups.values():
        assert (totals.requests, totals.errors, totals.tokens_in, totals.tokens_out) == (2, 1, 10, 5)
        assert totals.cost_usd == Decimal("0.25")
        assert totals.cache_hits == 1
        assert totals.latency_sum_ms == 712.0
        assert sum(totals.histogram) == 2


def test_another_hour_key_or_target_is_another_group_and_a_keyless_record_has_an_empty_key() -> None:
    groups = fold(
        [
            record(),
            record(ts=T0.replace(hour=11)),
            record(key_name=None, status=401),
            record(kind="tool_call", target="docs/search"),
        ]
    )
    by_key = sorted((g.bucket.hour, g.kind, g.key_name) for g in groups if g.grain == BY_KEY)
    assert by_key == [(10, "llm", ""), (10, "llm", "bot"), (10, "tool_call", "bot"), (11, "llm", "bot")]
    by_target = {(g.bucket.hour, g.kind, g.target): groups[g].requests for g in groups if g.grain == BY_TARGET}
    assert by_target == {
        (10, "llm", "echo/echo-1"): 2,
        (10, "tool_call", "docs/search"): 1,
        (11, "llm", "echo/echo-1"): 1,
    }
    everything = {(g.bucket.hour, g.kind): groups[g].requests for g in groups if g.grain == ALL}
    assert everything == {(10, "llm"): 2, (10, "tool_call"): 1, (11, "llm"): 1}


def test_a_guardrail_record_counts_its_matches_as_guardrail_hits() -> None:
    groups = fold([record(kind="guardrail", details={"hits": 3}), record(kind="guardrail", details={})])
    assert {totals.guardrail_hits for totals in groups.values()} == {4}


def test_a_latency_on_a_bound_falls_in_that_bounds_bucket_and_beyond_the_last_in_the_overflow() -> None:
    assert latency_bucket(0) == 0
    assert latency_bucket(1) == 0
    assert latency_bucket(1.01) == 1
    assert latency_bucket(10**9) == HISTOGRAM_BUCKETS - 1


def test_percentiles_interpolate_within_the_bucket_the_rank_falls_in() -> None:
    histogram = [0] * HISTOGRAM_BUCKETS
    histogram[latency_bucket(15)] = 50  # (10, 20]
    histogram[latency_bucket(150)] = 50  # (100, 200]
    assert percentile(histogram, 0.5) == pytest.approx(20.0)
    assert percentile(histogram, 0.25) == pytest.approx(15.0)
    assert percentile(histogram, 0.99) == pytest.approx(198.0)
    assert percentile([0] * HISTOGRAM_BUCKETS, 0.5) is None
    with pytest.raises(ValueError):
        percentile(histogram, 0)


def test_merged_totals_add_every_measure() -> None:
    left, right = Totals(), Totals()
    left.add(record(tokens_in=1, cost_usd=Decimal("1")))
    right.add(record(status=500, tokens_out=2, cost_usd=Decimal("2")))
    left.merge(right)
    assert (left.requests, left.errors, left.tokens_in, left.tokens_out, left.cost_usd) == (2, 1, 1, 2, Decimal("3"))
    assert sum(left.histogram) == 2


def test_a_batch_tallied_in_parts_folds_as_the_whole() -> None:
    records = [
        record(ts=T0 + timedelta(minutes=7 * index), key_name=f"k{index % 3}", latency_ms=float(index % 40))
        for index in range(100)
    ]
    pairs: Pairs = {}
    for start in range(0, len(records), 7):
        tally(pairs, records[start : start + 7])
    assert grains(pairs) == fold(records)
