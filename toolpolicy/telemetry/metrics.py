"""Prometheus metrics. Labels stay bounded: kinds, configured routes and servers, status codes, reason codes;
never request ids, key secrets or raw strings a caller chose (a route the configuration does not know is counted
under `other`, see `labels`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from toolpolicy.audit import AuditRecord
from toolpolicy.telemetry.labels import RouteLabels
from toolpolicy.telemetry.loop_lag import LAG_BUCKETS
from toolpolicy.telemetry.series import CounterSeries, HistogramSeries, SeriesCollector, observe_in

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
ROUTE_AREAS = frozenset({"v1", "admin", "mcp", "health", "ready", "metrics"})
"""First path segments the gateway serves: an unknown route is counted under its own, any other under `other`."""
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
_NUMBERS = (int, float)
"""What a duration in `details` may be (a tuple: `int | float` is a new union object at every evaluation)."""
MAX_REMEMBERED_ROUTES = 4096
"""Routes as requests recorded them (a caller's own model name among them) whose labels `Metrics` remembers; past
that many it works further ones out each time."""


class RequestSeries:
    """The series a record of one (kind, route as recorded, status) updates, kept so that `observe` finds them all
    with one lookup instead of one per series. Those a record may leave alone (upstream, overhead, time to first
    byte, tokens, cost) are made the first time one of them is updated (`made`), as the series themselves are: a
    series appears in the exposition only once something was counted in it."""

    __slots__ = (
        "cost",
        "duration",
        "kind_labels",
        "overhead",
        "requests",
        "route",
        "tokens_in",
        "tokens_out",
        "ttfb",
        "upstream",
    )

    def __init__(self, route: str, requests: list[float], duration: list[float], kind_labels: tuple[str]) -> None:
        self.route = route
        self.requests = requests
        self.duration = duration
        self.kind_labels = kind_labels
        self.upstream: list[float] | None = None
        self.overhead: list[float] | None = None
        self.ttfb: list[float] | None = None
        self.tokens_in: list[float] | None = None
        self.tokens_out: list[float] | None = None
        self.cost: list[float] | None = None

    def made(self, name: str, series: CounterSeries | HistogramSeries) -> list[float]:
        """The series `name` of this record's labels, found (or made) in `series` and kept. Hold the lock."""
        labels = {
            "upstream": self.kind_labels,
            "overhead": self.kind_labels,
            "ttfb": (self.route,),
            "tokens_in": (self.route, "input"),
            "tokens_out": (self.route, "output"),
            "cost": (self.kind_labels[0], self.route),
        }[name]
        found = series.entry(labels)
        setattr(self, name, found)
        return found


class Metrics:
    """One registry per process (not the global one, so tests and several apps do not collide). `labels` says
    which routes may be label values; without it, every route is `other`."""

    def __init__(self, labels: RouteLabels | None = None) -> None:
        self.labels = labels or RouteLabels()
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # The series every request record updates: plain numbers behind one lock, exposed at scrape (`series`).
        self.requests = CounterSeries(
            "isthmus_requests", "Requests by kind, route and status.", ["kind", "route", "status"]
        )
        self.denials = CounterSeries("isthmus_denials", "Requests refused, by kind and reason.", ["kind", "reason"])
        self.duration = HistogramSeries("isthmus_request_duration_seconds", "Whole request.", ["kind"], LATENCY_BUCKETS)
        self.upstream = HistogramSeries(
            "isthmus_upstream_duration_seconds", "Time spent waiting on upstreams.", ["kind"], LATENCY_BUCKETS
        )
        self.overhead = HistogramSeries(
            "isthmus_overhead_duration_seconds",
            "The gateway's own time: the whole request less the upstream part.",
            ["kind"],
            OVERHEAD_BUCKETS,
        )
        self.ttfb = HistogramSeries(
            "isthmus_time_to_first_byte_seconds",
            "Streams: time until the first byte reached the client.",
            ["route"],
            LATENCY_BUCKETS,
        )
        self.tokens = CounterSeries("isthmus_tokens", "Tokens by direction.", ["route", "direction"])
        self.cost = CounterSeries("isthmus_cost_usd", "Cost charged, in USD.", ["kind", "route"])
        self.per_request = SeriesCollector(
            self.requests, self.denials, self.duration, self.upstream, self.overhead, self.ttfb, self.tokens, self.cost
        )
        registry.register(self.per_request)  # first, where the metric objects it replaced were registered
        self.budget_remaining = Gauge(
            "isthmus_budget_remaining_usd",
            "USD left in a budget at its last reservation.",
            ["level", "name", "period"],
            registry=registry,
        )
        self.limit_denials = Counter(
            "isthmus_limit_denials",
            "Rate-limit and budget denials by level and kind.",
            ["level", "limit"],
            registry=registry,
        )
        self.counter_fallbacks = Counter(
            "isthmus_counter_store_fallbacks",
            "Reservations served by per-replica counters because Redis was unreachable.",
            registry=registry,
        )
        self.writer_quarantined = Counter(
            "isthmus_writer_quarantined",
            "Records the store rejected, written in escaped form instead (audit: kind=quarantined).",
            ["writer"],
            registry=registry,
        )
        self.writer_dropped = Counter(
            "isthmus_writer_dropped",
            "Records lost: buffer overflow while the store was down, or still waiting when it stayed down at exit.",
            ["writer"],
            registry=registry,
        )
        self.unpriced = Counter("isthmus_unpriced_requests", "Requests to models with no price.", registry=registry)
        self.upstream_health = Gauge(
            "isthmus_mcp_upstream_up", "1 when the MCP upstream is ready.", ["server", "state"], registry=registry
        )
        self.code_mode_runs = Counter(
            "isthmus_code_mode_runs", "Code Mode runs by outcome.", ["outcome"], registry=registry
        )
        self.unknown_routes = Counter(
            "isthmus_unknown_routes",
            "Requests for a path the gateway does not serve (404) or with a method its route does not take (405), "
            "by method (standard methods, else OTHER), area (the path's first segment when the gateway serves it, "
            "else other) and status.",
            ["method", "area", "status"],
            registry=registry,
        )
        self.guardrail_hits = Counter(
            "isthmus_guardrail_hits",
            "Guardrail matches, by rule, action (block, redact, log) and surface (input, output, tool_input, "
            "tool_output). Rule names come from the config, so the label set is bounded.",
            ["rule", "action", "surface"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "isthmus_cache_lookups",
            "Response cache outcomes: hit, semantic-hit, miss (looked up, absent) or bypass (not read).",
            ["outcome"],
            registry=registry,
        )
        self.cache_saved = Counter(
            "isthmus_cache_saved_usd", "Provider cost the cache's hits saved.", registry=registry
        )
        self.cache_hit_duration = Histogram(
            "isthmus_cache_hit_duration_seconds",
            "Requests answered from the cache.",
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "isthmus_event_loop_lag_seconds",
            "How long a callback handed to the event loop waited to run (probed every telemetry.loop_lag_interval): "
            "what a request's I/O waits for the loop.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        self._requests: dict[tuple[str, Any, int], RequestSeries] = {}
        """(kind, route as recorded, status) -> the series such a record updates: found with one lookup (`observe`);
        bounded, as the route as recorded comes from requests."""

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """`metric.labels(*values)`, looked up once per label set: `labels` validates and locks on every call, and
        the label sets `observe` uses are bounded (see `labels`), so the children are kept here."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def _request_series(self, kind: str, recorded: Any, status: int) -> RequestSeries:
        """Made holding the lock: the series a record always updates are made (if new) as it updates them."""
        # Only a route (the provider/model that answered, a catalogued tool) may become a label, and only one the
        # configuration knows: a model name a caller made up is still answered by a provider that takes any name.
        route = self.labels.route(kind, recorded)
        kind_labels = (kind,)
        found = RequestSeries(
            route,
            self.requests.entry((kind, route, str(status))),
            self.duration.entry(kind_labels),
            kind_labels,
        )
        if len(self._requests) < MAX_REMEMBERED_ROUTES:
            self._requests[(kind, recorded, status)] = found
        return found

    def unknown_route(self, method: str, path: str, status: int) -> None:
        """Count a request no route took. The path is never a label: only its first segment, if the gateway
        serves that area (`ROUTE_AREAS`), and a method outside the standard ones is `OTHER`."""
        area = path.lstrip("/").split("/", 1)[0]
        labels = (method if method in HTTP_METHODS else "OTHER", area if area in ROUTE_AREAS else "other")
        self._child(self.unknown_routes, *labels, str(status)).inc()

    def observe(self, record: AuditRecord) -> None:
        """Everything a finished request tells, from its audit record."""
        details = record.details
        if record.kind == "guardrail":  # an enforcement inside a request, counted by its own metric only
            labels = (str(details.get("rule")), str(details.get("action")), str(details.get("surface")))
            self._child(self.guardrail_hits, *labels).inc(int(details.get("hits") or 1))
            return
        kind = record.kind
        key = (kind, details.get("route"), record.status)
        seconds = record.latency_ms / 1000
        upstream_ms = details.get("upstream_ms")
        ttfb_ms = details.get("ttfb_ms")
        tokens_in, tokens_out, cost = record.tokens_in, record.tokens_out, record.cost_usd
        found = self._requests.get(key)
        with self.per_request.lock:
            if found is None:
                found = self._request_series(*key)
            found.requests[0] += 1
            if record.decision == "deny" and record.reason:
                self.denials.inc((kind, record.reason))
            latency_bounds = self.duration.bounds  # the upstream's and time to first byte's too
            observe_in(found.duration, latency_bounds, seconds)
            if isinstance(upstream_ms, _NUMBERS):
                upstream = upstream_ms / 1000
                overhead = seconds - upstream
                observe_in(found.upstream or found.made("upstream", self.upstream), latency_bounds, upstream)
                # NaN and -0.0 too: 0.0
                overhead = overhead if overhead > 0.0 else 0.0
                observe_in(found.overhead or found.made("overhead", self.overhead), self.overhead.bounds, overhead)
            if isinstance(ttfb_ms, _NUMBERS):
                observe_in(found.ttfb or found.made("ttfb", self.ttfb), latency_bounds, ttfb_ms / 1000)
            if tokens_in:
                if tokens_in < 0:
                    self.tokens.inc((found.route, "input"), tokens_in)  # refused, as the counter refuses it
                (found.tokens_in or found.made("tokens_in", self.tokens))[0] += tokens_in
            if tokens_out:
                if tokens_out < 0:
                    self.tokens.inc((found.route, "output"), tokens_out)
                (found.tokens_out or found.made("tokens_out", self.tokens))[0] += tokens_out
            if cost and cost > 0:  # a counter only goes up: a credit is not a cost
                (found.cost or found.made("cost", self.cost))[0] += float(cost)
        cache = details.get("cache")
        if cache in ("hit", "semantic-hit", "miss", "bypass"):
            self._child(self.cache_lookups, cache).inc()
            if cache in ("hit", "semantic-hit"):
                self.cache_hit_duration.observe(seconds)
                self.cache_saved.inc(float(details.get("cache_saved_usd") or 0))
