"""The gateway's own event-loop lag while a point is measured: its `isthmus_event_loop_lag_seconds` histogram,
scraped from `/metrics` before and after, and the difference.

The gateway probes its loop from a thread (`toolpolicy.telemetry.loop_lag`); the benchmark sets the probe's interval
to `PROBE_INTERVAL` so a five-second point has a few hundred probes. A probe that waited more than a millisecond means
a request's I/O would have waited as long: behind other requests' work (c=16), work that does not yield, another
thread holding the GIL, or the gateway waiting for a core (this machine's other processes).
"""

from __future__ import annotations

import http.client
import re
import urllib.parse
from dataclasses import dataclass, field

PROBE_INTERVAL = 0.01
"""Seconds between two probes in the benchmark's gateways (the gateway's default is 0.1)."""
METRIC = "isthmus_event_loop_lag_seconds"
_BUCKET = re.compile(rf'^{METRIC}_bucket{{le="([^"]+)"}} (\S+)$', re.MULTILINE)
_COUNT = re.compile(rf"^{METRIC}_count (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class LagCounts:
    """Probes counted, and how many waited at most each bucket's bound (seconds), cumulative as Prometheus has them."""

    probes: float
    within: dict[float, float] = field(default_factory=dict)

    def __sub__(self, before: LagCounts) -> LagCounts:
        return LagCounts(
            self.probes - before.probes,
            {bound: count - before.within.get(bound, 0.0) for bound, count in self.within.items()},
        )

    def share_over(self, bound: float) -> float | None:
        """The share of probes that waited longer than `bound` seconds (a bucket bound), None without probes."""
        if self.probes <= 0 or bound not in self.within:
            return None
        return 1 - self.within[bound] / self.probes


def parse(text: str) -> LagCounts | None:
    """The histogram in a `/metrics` exposition, None when it has none."""
    count = _COUNT.search(text)
    if count is None:
        return None
    within = {float(bound): float(value) for bound, value in _BUCKET.findall(text) if bound != "+Inf"}
    return LagCounts(float(count.group(1)), within)


def scrape(base: str, token: str) -> LagCounts | None:
    """The gateway's histogram now (None when it answers none: probe off, or not an Isthmus gateway)."""
    parts = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=10)
    try:
        connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
        answer = connection.getresponse()
        text = answer.read().decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        connection.close()
    return parse(text) if answer.status == 200 else None


def describe(counts: LagCounts) -> str:
    """E.g. `512 probes, 1.2% waited over 1 ms, 0.2% over 5 ms`."""
    over_1, over_5 = counts.share_over(0.001), counts.share_over(0.005)
    if over_1 is None or over_5 is None:
        return "no probes"
    return f"{counts.probes:,.0f} probes, {over_1:.1%} waited over 1 ms, {over_5:.1%} over 5 ms"
