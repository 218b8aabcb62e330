"""Counters and histograms kept as plain Python numbers, exposed to Prometheus by a Collector at scrape time.

Every request's record updates several series (`Metrics.observe`); prometheus_client's own metric objects take a
lock and run a few checks per `inc` and per histogram bucket, ten or so per request. Here the caller takes one lock
for the whole record (`SeriesCollector.lock`) and each update is a dict lookup and an addition. The exposition is
the one prometheus_client's `Counter` and `Histogram` give: same names, HELP, TYPE, samples and their order
(`_total` then `_created`; buckets, `_count`, `_sum`, `_created`), checked against the library in the tests."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.metrics import _use_created
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import INF, floatToGoString

GO_FLOAT: Callable[[float], str] = floatToGoString
"""How prometheus_client writes a bucket bound (`le`): 1.0, +Inf (the library leaves it untyped)."""


class CounterSeries:
    """A counter by label values: labels -> [value, created]. Update it only while holding the collector's lock."""

    __slots__ = ("documentation", "labelnames", "name", "series")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.series: dict[tuple[str, ...], list[float]] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1) -> None:
        if amount < 0:  # the message prometheus_client's Counter.inc gives
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.entry(labels)[0] += amount

    def entry(self, labels: tuple[str, ...]) -> list[float]:
        """The series of `labels`, `[value, created]`, made now (created now) if it was not there: a caller that
        keeps it adds to `[0]` directly, by a non-negative amount, holding the lock (series are never removed)."""
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = [0.0, time.time()]
        return found

    def value(self, labels: tuple[str, ...]) -> float:
        found = self.series.get(labels)
        return 0.0 if found is None else found[0]

    def family(self, snapshot: Iterable[tuple[tuple[str, ...], list[float]]]) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, (value, created) in snapshot:
            family.add_metric(labels, value, created if _use_created else None)
        return family


class HistogramSeries:
    """A histogram by label values: labels -> [count per bucket ..., sum, created] (bucket counts not cumulative,
    as prometheus_client keeps them; the exposition sums them up). Update it only while holding the lock."""

    __slots__ = ("bounds", "documentation", "labelnames", "les", "name", "series")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        bounds = [float(bound) for bound in buckets]
        if bounds[-1] != INF:
            bounds.append(INF)
        self.bounds = tuple(bounds)
        self.les = tuple(GO_FLOAT(bound) for bound in bounds)
        self.series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], amount: float) -> None:
        observe_in(self.entry(labels), self.bounds, amount)

    def entry(self, labels: tuple[str, ...]) -> list[float]:
        """The series of `labels`, made now if it was not there (as `CounterSeries.entry`)."""
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = [0] * len(self.bounds) + [0.0, time.time()]
        return found

    def family(self, snapshot: Iterable[tuple[tuple[str, ...], list[float]]]) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, found in snapshot:
            cumulative, buckets = 0.0, []
            for le, count in zip(self.les, found[:-2], strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(labels, buckets, found[-2])
            if _use_created:
                family.samples.append(
                    Sample(f"{self.name}_created", dict(zip(self.labelnames, labels, strict=True)), found[-1])
                )
        return family


def observe_in(found: list[float], bounds: tuple[float, ...], amount: float) -> None:
    """`HistogramSeries.observe` on a series already found (`found`, from `entry`; `bounds`, the histogram's)."""
    if amount == amount:  # NaN lands in no bucket (prometheus_client's `amount <= bound`)
        found[bisect_left(bounds, amount)] += 1  # the first bucket whose bound is >= amount
    found[-2] += amount


class SeriesCollector(Collector):
    """Several series exposed in their given order. `lock` guards every update and the scrape's copy, so counts
    stay exact whichever thread records; the event loop takes it once per request record."""

    def __init__(self, *metrics: CounterSeries | HistogramSeries) -> None:
        self.metrics = metrics
        self.lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            snapshots = [[(labels, list(found)) for labels, found in metric.series.items()] for metric in self.metrics]
        for metric, snapshot in zip(self.metrics, snapshots, strict=True):
            yield metric.family(snapshot)
