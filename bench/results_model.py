"""The figures of one benchmark run, as collected, before they are rendered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.attribution import Attribution
from bench.interleaved import FirstEvents, Interleaved
from bench.loadgen import LoadResult
from bench.loop_lag import LagCounts


@dataclass
class PathInfo:
    name: str
    kind: str
    note: str = ""
    peak_rss_mib: float | None = None
    idle_rss_mib: float | None = None
    """Resident memory once started and ready, before any load."""


@dataclass
class CacheFigures:
    """The response cache scenario (`bench.cache`): each series' round trips, and what the targets subtract."""

    series: dict[str, dict[str, float]]
    """By series name (`bench.cache.SERIES`): `n`, `p50`, `p90` in ms."""
    not_semantic: dict[str, int] = field(default_factory=dict)
    """Paraphrases answered other than `semantic-hit`, by the `x-isthmus-cache` they got."""

    def p50(self, name: str) -> float:
        return self.series[name]["p50"]

    @property
    def hit_added(self) -> float:
        """An exact hit's p50 over a `/health` round trip on the same gateway."""
        return self.p50("hit") - self.p50("health")

    @property
    def miss_added(self) -> float:
        """A miss's p50 with the cache over the same with no cache."""
        return self.p50("miss on") - self.p50("miss off")

    @property
    def semantic_added(self) -> float:
        """A semantic hit's p50 over `/health` on its gateway and one embedding call straight to the mock."""
        return self.p50("semantic hit") - self.p50("health sem") - self.p50("embedding")


@dataclass
class Run:
    """Everything measured in one run, keyed by path name and scenario."""

    connections: tuple[int, ...]
    duration: float
    warmup: float
    paths: dict[str, PathInfo] = field(default_factory=dict)
    loads: dict[tuple[str, str, int], LoadResult] = field(default_factory=dict)
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    mock_capacity: dict[str, LoadResult] = field(default_factory=dict)
    """Extra capacity checks, e.g. the SDK's MCP server beside the hand-rolled mock."""
    spans: dict[str, Any] = field(default_factory=dict)
    loop_lag: dict[tuple[str, str, int], LagCounts] = field(default_factory=dict)
    """An Isthmus gateway's event-loop lag probes during each point (`bench.loop_lag`)."""
    profiles: dict[str, str] = field(default_factory=dict)
    """Markdown summaries of py-spy profiles, by title."""
    attributions: dict[str, Attribution] = field(default_factory=dict)
    """Whose code each profile's CPU went to, per request, by the same titles."""
    machine: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cache: CacheFigures | None = None
    """The response cache scenario, when it ran."""
    interleaved: dict[str, Interleaved] = field(default_factory=dict)
    """By scenario: the c=16 figures of the paths a target compares, measured taking turns (`bench.interleaved`)."""
    first_events: FirstEvents | None = None
    """Paced streams' first event through the floor and `isthmus`, measured taking turns (`bench.interleaved`)."""
    stream_gap_ms: float = 2.0
    stream_chunks: int = 16
    seconds: float = 0.0

    def load(self, path: str, scenario: str, connections: int) -> LoadResult | None:
        return self.loads.get((path, scenario, connections))

    def path_names(self, scenario: str) -> list[str]:
        """Paths with at least one figure for the scenario, in the order they were measured."""
        return [name for name in self.paths if any(key[:2] == (name, scenario) for key in self.loads)]
