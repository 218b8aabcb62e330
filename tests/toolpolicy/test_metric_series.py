"""The plain-number series behind `Metrics.observe` expose exactly what prometheus_client's Counter and Histogram
would: this fails when the library's exposition (or the private `_use_created` it reads) changes underneath."""

from __future__ import annotations

import re
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from toolpolicy.telemetry.series import CounterSeries, HistogramSeries, SeriesCollector

BUCKETS = (0.001, 0.01, 0.1, 1, 10)
VALUES = (0.0, 0.001, 0.0011, 0.5, 1, 3.25, 10, 11, 1e9, float("nan"), -0.5)


def without_created(text: bytes) -> str:
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text.decode())


def test_the_exposition_is_prometheus_clients_own() -> None:
    reference = CollectorRegistry()
    counter = Counter("demo_requests", "Requests.", ["kind", "route"], registry=reference)
    plain = Counter("demo_plain", "No labels seen.", ["kind"], registry=reference)
    histogram = Histogram("demo_seconds", "Time.", ["kind"], buckets=BUCKETS, registry=reference)
    ours = CollectorRegistry()
    series = (
        CounterSeries("demo_requests", "Requests.", ["kind", "route"]),
        CounterSeries("demo_plain", "No labels seen.", ["kind"]),
        HistogramSeries("demo_seconds", "Time.", ["kind"], BUCKETS),
    )
    ours.register(SeriesCollector(*series))
    for index, value in enumerate(VALUES):
        labels = ("llm", f"r{index % 3}")
        counter.labels(*labels).inc(abs(value) if value == value else 1)
        series[0].inc(labels, abs(value) if value == value else 1)
        histogram.labels(labels[1]).observe(value)
        series[2].observe(labels[1:], value)
    assert plain.describe()  # declared, never counted: HELP and TYPE only, in both
    assert without_created(generate_latest(ours)) == without_created(generate_latest(reference))
    assert "_created" in without_created(generate_latest(ours))


def test_a_counter_refuses_to_go_down_as_prometheus_client_does() -> None:
    with pytest.raises(ValueError, match="non-negative") as ours:
        CounterSeries("demo", "Demo.", ["kind"]).inc(("llm",), -1)
    with pytest.raises(ValueError) as theirs:
        Counter("demo", "Demo.", ["kind"], registry=CollectorRegistry()).labels("llm").inc(-1)
    assert str(ours.value) == str(theirs.value)


def test_counts_stay_exact_when_threads_record_under_the_lock() -> None:
    requests = CounterSeries("demo_requests", "Requests.", ["kind"])
    seconds = HistogramSeries("demo_seconds", "Time.", ["kind"], BUCKETS)
    collector = SeriesCollector(requests, seconds)
    registry = CollectorRegistry()
    registry.register(collector)

    def record() -> None:
        for index in range(20_000):
            with collector.lock:
                requests.inc((f"k{index % 4}",))
                seconds.observe(("k",), 0.5)
            if index % 1000 == 0:
                generate_latest(registry)  # scrapes in between must not disturb the counting

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(registry.get_sample_value("demo_requests_total", {"kind": f"k{n}"}) or 0 for n in range(4)) == 80_000
    assert registry.get_sample_value("demo_seconds_count", {"kind": "k"}) == 80_000
    assert registry.get_sample_value("demo_seconds_bucket", {"kind": "k", "le": "0.1"}) == 0
