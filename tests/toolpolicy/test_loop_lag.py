"""The event loop's lag probe: what a callback handed over from another thread waited, observed into a histogram."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from tests.conftest import StoreTarget
from tests.toolpolicy.limits_support import settings
from toolpolicy.runtime import Governance
from toolpolicy.telemetry.loop_lag import LAG_BUCKETS, LoopLag
from toolpolicy.telemetry.metrics import Metrics

pytestmark = pytest.mark.anyio


class SteppedClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def histogram() -> Histogram:
    return Histogram("lag_seconds", "lag", buckets=LAG_BUCKETS, registry=CollectorRegistry())


def observed(metric: Histogram) -> tuple[float, float]:
    """(count, sum) of the histogram's observations."""
    values = {sample.name: sample.value for sample in next(iter(metric.collect())).samples}
    return values["lag_seconds_count"], values["lag_seconds_sum"]


async def test_a_probe_observes_how_long_the_loop_took_to_run_it() -> None:
    clock, metric = SteppedClock(), histogram()
    lag = LoopLag(metric, interval=60, clock=clock)
    lag.start(asyncio.get_running_loop())
    try:
        # The loop is busy with this task when the probe is handed over, and the clock moves on meanwhile.
        lag.probe()
        clock.now += 0.004
        await asyncio.sleep(0)
    finally:
        lag.stop()
    count, total = observed(metric)
    assert (count, total) == (1, pytest.approx(0.004))


async def test_the_thread_probes_every_interval_until_stopped() -> None:
    metric = histogram()
    lag = LoopLag(metric, interval=0.001)
    lag.start(asyncio.get_running_loop())
    while observed(metric)[0] < 3:
        await asyncio.sleep(0.001)
    thread = lag._thread
    lag.stop()
    assert thread is not None
    await asyncio.to_thread(thread.join)  # it ends at its next wake-up
    stopped_at = observed(metric)[0]
    await asyncio.sleep(0.01)
    assert observed(metric)[0] <= stopped_at + 1  # at most the probe already handed over when it stopped


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        LoopLag(histogram(), interval=0)


async def test_the_gateway_probes_while_started_and_not_when_turned_off(store_target: StoreTarget) -> None:
    governance = Governance(
        settings(store_target.url, telemetry={"loop_lag_interval": 0.001}), store_connect_args=store_target.connect_args
    )
    await governance.start()
    assert governance.loop_lag is not None
    thread = governance.loop_lag._thread
    try:
        while "isthmus_event_loop_lag_seconds_count 0.0" in metrics_text(governance.metrics):
            await asyncio.sleep(0.001)
    finally:
        await governance.stop()
    assert thread is not None
    await asyncio.to_thread(thread.join)
    off = Governance(settings(store_target.url, telemetry={"loop_lag_interval": 0}))
    assert off.loop_lag is None


def metrics_text(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()
