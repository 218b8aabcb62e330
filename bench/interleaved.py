"""Throughput shares measured interleaved: the paths a target compares take turns in short windows.

The run's own figures measure one path after another, minutes apart, and this machine's speed drifts within a run
(on 2026-12-07 the mock alone answered from 104k down to 24k rps over the day, and guardrails' chat once answered
faster than plain chat measured a minute before it). A share of two figures measured apart carries that drift.
Here every compared path runs at once (idle but for its turn), and each round measures each of them for `window`
seconds, in an order that rotates from round to round; a share is the median over rounds of the two figures of one
round, so both sides of it met the same machine within seconds of each other.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bench.loadgen import HttpRequest, LoadResult

ROUNDS = 5
WINDOW = 3.0
"""Seconds each path is measured for in a round: wrk's resolution is a whole second, and 3 s keeps a round of five
paths within 15 s, short beside the drift it is meant to cancel."""

STREAMS_PER_TURN = 30
"""Paced streams a path answers in one turn of the stream timings (each ~40 ms: 16 events 2 ms apart)."""

T = TypeVar("T")
Load = Callable[[HttpRequest, int, float], LoadResult]
"""`run_wrk` with its `wrk` bound: (request, connections, seconds) -> the result."""


@dataclass(frozen=True)
class Share:
    """One path's throughput as a share of another's, one figure per round."""

    median: float
    low: float
    high: float
    rounds: int

    def text(self) -> str:
        return f"{self.median:.0%} (median of {self.rounds} interleaved rounds, {self.low:.0%}-{self.high:.0%})"


@dataclass
class Interleaved:
    """One scenario's interleaved rounds at one concurrency: each path's rps, round by round."""

    scenario: str
    connections: int
    window: float
    rps: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    """Failed or unexpected answers per path, over all its windows (a path with any is not judged)."""

    def share(self, path: str, reference: str) -> Share | None:
        """`path`'s rps over `reference`'s, round by round; None when either is missing or answered errors."""
        mine, theirs = self.rps.get(path), self.rps.get(reference)
        if not mine or not theirs or self.errors.get(path) or self.errors.get(reference):
            return None
        ratios = sorted(a / b for a, b in zip(mine, theirs, strict=True) if b > 0)
        if not ratios:
            return None
        return Share(statistics.median(ratios), ratios[0], ratios[-1], len(ratios))

    def cost(self, path: str, reference: str) -> Share | None:
        """What `path` costs against `reference`: one minus its share, round by round."""
        share = self.share(path, reference)
        if share is None:
            return None
        return Share(1 - share.median, 1 - share.high, 1 - share.low, share.rounds)


@dataclass
class FirstEvents:
    """Paced streams' first event, p50 in ms over a turn's streams, per path and round."""

    streams: int
    p50_ms: dict[str, list[float]] = field(default_factory=dict)

    def after(self, path: str, reference: str) -> Share | None:
        """How much later `path`'s first event came than `reference`'s (ms), round by round: the median of the
        rounds' differences and their range."""
        mine, theirs = self.p50_ms.get(path), self.p50_ms.get(reference)
        if not mine or not theirs:
            return None
        differences = sorted(a - b for a, b in zip(mine, theirs, strict=True))
        return Share(statistics.median(differences), differences[0], differences[-1], len(differences))


def turns(paths: Sequence[str], round_index: int) -> list[str]:
    """The order of a round: the paths rotated, and every other round reversed, so that over as many rounds as
    paths each goes first once (after the longest idle) and none always follows the same one (whose background
    work, an exporter's last batch, may spill into the next turn)."""
    if not paths:
        return []
    shift = (round_index + round_index % 2) % len(paths)
    order = [*paths[shift:], *paths[:shift]]
    return order[::-1] if round_index % 2 else order


def measure(
    requests: dict[str, HttpRequest],
    scenario: str,
    connections: int,
    load: Load,
    *,
    rounds: int = ROUNDS,
    window: float = WINDOW,
    warmup: float = 1.0,
    log: Callable[[str], None] = print,
) -> Interleaved:
    """`requests` (path -> its request for `scenario`), each warmed up, then `rounds` rounds of one window each."""
    result = Interleaved(scenario, connections, window)
    for request in requests.values():
        load(request, connections, warmup)

    def describe(answer: LoadResult) -> str:
        return f"{answer.rps:,.0f} rps"

    label = f"{scenario} c={connections}"
    answers = take_turns(
        list(requests), rounds, lambda path: load(requests[path], connections, window), describe, label, log
    )
    for path, results in answers.items():
        result.rps[path] = [answer.rps for answer in results]
        result.errors[path] = sum(answer.error_count for answer in results)
    return result


def take_turns(
    paths: list[str],
    rounds: int,
    one: Callable[[str], T],
    describe: Callable[[T], str],
    label: str,
    log: Callable[[str], None],
) -> dict[str, list[T]]:
    """`one(path)` for every path once a round, in `turns` order; each path's results in the rounds' order."""
    results: dict[str, list[T]] = {path: [] for path in paths}
    for index in range(rounds):
        figures = []
        for path in turns(paths, index):
            outcome = one(path)
            results[path].append(outcome)
            figures.append(f"{path} {describe(outcome)}")
        log(f"  {label} round {index + 1}: " + ", ".join(figures))
    return results
