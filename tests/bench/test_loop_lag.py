"""The gateway's event-loop lag, read from its `/metrics` around a point: what the bench reports beside latency."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from bench.gateway import PLAIN, WORKERS, Upstreams, config
from bench.loop_lag import PROBE_INTERVAL, LagCounts, describe, parse
from bench.report import render
from tests.bench.test_report import _run
from toolpolicy.settings import GatewaySettings
from toolpolicy.telemetry.metrics import Metrics


def exposition(*lags: float) -> str:
    metrics = Metrics()
    for lag in lags:
        metrics.loop_lag.observe(lag)
    return generate_latest(metrics.registry).decode()


def test_the_probes_of_a_point_are_the_difference_of_two_scrapes() -> None:
    before = parse(exposition(0.0002, 0.03))
    after = parse(exposition(0.0002, 0.03, 0.0001, 0.0003, 0.002, 0.007))
    assert before is not None and after is not None
    during = after - before
    assert during.probes == 4
    assert during.share_over(0.001) == 0.5 and during.share_over(0.005) == 0.25
    assert describe(during) == "4 probes, 50.0% waited over 1 ms, 25.0% over 5 ms"


def test_a_gateway_without_the_probe_has_no_histogram_to_read() -> None:
    assert parse("# HELP other_total x\nother_total 3.0\n") is None
    assert LagCounts(0).share_over(0.001) is None and describe(LagCounts(0)) == "no probes"


def test_the_bench_turns_the_probe_on_for_its_runs_only(tmp_path: Path) -> None:
    upstreams = Upstreams("http://127.0.0.1:1", "http://127.0.0.1:2", redis="redis://127.0.0.1:6379/15")
    probed = GatewaySettings.model_validate(config(PLAIN, 8080, tmp_path / "db", "isk-x", upstreams, lag_probe=True))
    assert probed.telemetry.loop_lag_interval == PROBE_INTERVAL and probed.metrics_token is not None
    # bench.cpu_cost's other tree may predate the setting: it gets the gateway's default.
    default = GatewaySettings.model_validate(config(WORKERS, 8080, tmp_path / "db", "isk-x", upstreams))
    assert default.telemetry.loop_lag_interval == GatewaySettings().telemetry.loop_lag_interval


def test_the_report_gives_each_gateway_s_lag_under_its_scenario() -> None:
    run = _run()
    run.loop_lag[("isthmus", "chat", 1)] = LagCounts(500, {0.001: 495, 0.005: 500})
    run.loop_lag[("isthmus", "chat", 16)] = LagCounts(400, {0.001: 100, 0.005: 380})
    text = render(run, "2026-01-01")
    assert (
        "- Event-loop lag of `isthmus` (a probe every 10 ms): c=1: 500 probes, 1.0% waited over 1 ms, 0.0% over 5 ms; "
        "c=16: 400 probes, 75.0% waited over 1 ms, 5.0% over 5 ms." in text
    )
