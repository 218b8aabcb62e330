"""`isthmus_budget_remaining_usd`: the USD left in each budget at its last reservation, whenever it is scraped."""

from __future__ import annotations

import pytest

from tests.conftest import StoreTarget
from tests.toolpolicy.limits_support import principal, running, spend
from tests.toolpolicy.test_governor_fold import governed
from toolpolicy.runtime import Governance

pytestmark = pytest.mark.anyio


def remaining(governance: Governance) -> dict[tuple[str, str, str], float]:
    """Every budget's gauge sample, by (level, name, period), as a scrape reads it."""
    (family,) = [
        metric
        for metric in governance.governor.metrics.registry.collect()
        if metric.name == "isthmus_budget_remaining_usd"
    ]
    return {
        (sample.labels["level"], sample.labels["name"], sample.labels["period"]): sample.value
        for sample in family.samples
    }


async def test_each_budget_reports_what_its_last_reservation_left(store_target: StoreTarget) -> None:
    async with running(governed(store_target.url, None), store_target.connect_args) as governance:
        who = await principal(governance, "alpha")
        assert remaining(governance) == {}
        for _ in range(3):
            await spend(governance, who)  # holds $0.01, settles at $0.01
        # $1000 each: two settled charges, and the last reservation's hold.
        first = remaining(governance)
        assert sorted(level for level, _, _ in first) == ["customer", "key", "team"]
        assert all(value == pytest.approx(999.97) for value in first.values())
        assert remaining(governance) == first  # reading does not move it
        await spend(governance, who)
        assert all(value == pytest.approx(999.96) for value in remaining(governance).values())


async def test_after_a_reload_the_gauges_follow_the_new_governor(store_target: StoreTarget) -> None:
    config = governed(store_target.url, None)
    async with running(config, store_target.connect_args) as governance:
        await spend(governance, await principal(governance, "alpha"))
        assert all(value == pytest.approx(999.99) for value in remaining(governance).values())
        derived = governance.derive(config)
        await spend(derived, await principal(derived, "alpha"))
        # The reloaded governor's reservation is the last one: the spend carries on, one charge and one hold.
        gauges = remaining(derived)
        assert len(gauges) == 3 and all(value == pytest.approx(999.98) for value in gauges.values())
