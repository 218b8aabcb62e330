"""Interleaved shares: rounds in rotating order, shares paired within a round, and the targets judged by them."""

from __future__ import annotations

import shutil

import anyio
import pytest

from bench.interleaved import FirstEvents, Interleaved, measure, take_turns, turns
from bench.loadgen import HttpRequest, LoadResult, run_wrk
from bench.report import render
from bench.results_model import PathInfo, Run
from bench.scenarios import chat_body

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench installs it)")


def _result(rps: float, seconds: float = 3.0, bad: int = 0) -> LoadResult:
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0, "bad": bad}
    return LoadResult(16, round(rps * seconds), seconds, 1.0, 1.5, 3.0, 1.0, 6.0, errors)


def test_rounds_vary_which_path_goes_first_and_which_follows_which() -> None:
    paths = ["a", "b", "c", "d", "e"]
    orders = [turns(paths, index) for index in range(5)]
    assert orders == [
        ["a", "b", "c", "d", "e"],
        ["b", "a", "e", "d", "c"],
        ["c", "d", "e", "a", "b"],
        ["d", "c", "b", "a", "e"],
        ["e", "a", "b", "c", "d"],
    ]
    assert sorted(order[0] for order in orders) == paths
    for path in paths:
        before = {order[order.index(path) - 1] for order in orders if order.index(path) > 0}
        assert len(before) > 1, path
    assert [turns(["a", "b"], index) for index in range(3)] == [["a", "b"], ["b", "a"], ["a", "b"]]


def test_a_share_pairs_the_figures_of_one_round_so_a_drifting_machine_cancels_out() -> None:
    # The machine halves its speed round after round: both paths' figures fall, their ratio within a round holds.
    measured = Interleaved("chat", 16, 3.0)
    measured.rps = {"floor": [4000, 2000, 1000, 500, 250], "isthmus": [2000, 1000, 520, 240, 125]}
    share = measured.share("isthmus", "floor")
    assert share is not None
    assert (share.median, share.low, share.high, share.rounds) == (0.5, 0.48, 0.52, 5)
    cost = measured.cost("isthmus", "floor")
    assert cost is not None and (cost.median, cost.low, cost.high) == pytest.approx((0.5, 0.48, 0.52))
    assert share.text() == "50% (median of 5 interleaved rounds, 48%-52%)"
    # Ratios of the two paths' medians instead would mix rounds the machine ran at different speeds.
    assert measured.share("isthmus", "nothing") is None


def test_a_path_that_answered_errors_is_not_judged() -> None:
    measured = Interleaved("chat", 16, 3.0)
    measured.rps = {"floor": [4000.0], "isthmus": [3000.0]}
    measured.errors = {"floor": 0, "isthmus": 2}
    assert measured.share("isthmus", "floor") is None


def test_measure_warms_each_path_then_measures_each_once_a_round_in_rotating_order() -> None:
    requests = {name: HttpRequest(f"http://127.0.0.1:1/{name}") for name in ("floor", "isthmus", "isthmus+gov")}
    calls: list[tuple[str, float]] = []
    speed = {"floor": 4000.0, "isthmus": 2000.0, "isthmus+gov": 1600.0}

    def load(request: HttpRequest, connections: int, seconds: float) -> LoadResult:
        name = request.url.rsplit("/", 1)[1]
        calls.append((name, seconds))
        assert connections == 16
        return _result(speed[name], seconds, bad=1 if name == "isthmus+gov" and len(calls) == 9 else 0)

    measured = measure(requests, "chat", 16, load, rounds=2, window=3.0, warmup=1.0, log=lambda line: None)
    assert calls == [
        ("floor", 1.0),
        ("isthmus", 1.0),
        ("isthmus+gov", 1.0),
        ("floor", 3.0),
        ("isthmus", 3.0),
        ("isthmus+gov", 3.0),
        ("isthmus", 3.0),
        ("floor", 3.0),
        ("isthmus+gov", 3.0),
    ]
    assert measured.rps == {"floor": [4000, 4000], "isthmus": [2000, 2000], "isthmus+gov": [1600, 1600]}
    assert measured.errors == {"floor": 0, "isthmus": 0, "isthmus+gov": 1}
    share = measured.share("isthmus", "floor")
    assert share is not None and share.median == 0.5
    assert measured.cost("isthmus+gov", "isthmus") is None


def _run_with_drift() -> Run:
    """Figures measured one after the other on a machine that slowed down between them, and the same paths
    measured taking turns."""
    run = Run(connections=(1, 16), duration=5, warmup=1)
    for name, kind in (("direct", "direct"), ("floor", "floor"), ("isthmus", "gateway"), ("isthmus+gov", "gateway")):
        run.paths[name] = PathInfo(name, kind)
    for name, rps in (("direct", 20000), ("floor", 5000), ("isthmus", 3000), ("isthmus+gov", 1500)):
        run.loads[(name, "chat", 16)] = _result(rps, 5.0)
    measured = Interleaved("chat", 16, 3.0)
    measured.rps = {"floor": [5000, 4000, 3000], "isthmus": [3600, 2880, 2100], "isthmus+gov": [3000, 2400, 1800]}
    measured.errors = {"floor": 0, "isthmus": 0, "isthmus+gov": 0}
    run.interleaved["chat"] = measured
    return run


def test_the_targets_are_judged_by_the_interleaved_shares_with_the_sequential_figures_beside() -> None:
    text = render(_run_with_drift(), "2026-01-01")
    assert (
        "| Chat, c=16: ≥ 70% of the floor | 72% (median of 3 interleaved rounds, 70%-72%); one after the other "
        "3,000 of 5,000 rps (floor) = 60% | yes |"
    ) in text
    governance = next(line for line in text.splitlines() if line.startswith("| Governance on"))
    assert "| 17% (median of 3 interleaved rounds, 14%-17%); one after the other 50% (1,500 vs 3,000 rps) | yes |" in (
        governance
    )
    assert "| isthmus+gov | 3,000 | 2,400 | 1,800 | 0 |" in text


def _stream_summary(first_event_p50: float) -> dict[str, object]:
    quantiles = {"p50": 0.0, "p90": 0.0, "p99": 0.0}
    return {
        "streams": 150,
        "errors": 0,
        "headers_ms": quantiles,
        "first_event_ms": {**quantiles, "p50": first_event_p50},
        "total_ms": quantiles,
        "gap_ms": {**quantiles, "p50": 2.1},
        "events_per_stream": 19,
        "held_back_share": 0.0,
    }


def test_the_first_event_is_judged_by_the_rounds_differences() -> None:
    run = _run_with_drift()
    run.streams = {"isthmus": _stream_summary(1.90), "floor": _stream_summary(1.10)}
    # One after the other the gateway looks 0.8 ms late; taking turns, 0.40 ms in the median round.
    run.first_events = FirstEvents(30, {"floor": [1.0, 1.6, 0.8], "isthmus": [1.5, 2.0, 1.1]})
    text = render(run, "2026-01-01")
    assert (
        "| Streaming: first event ≤ 0.5 ms after the floor's (p50) | 0.40 ms (median of 3 interleaved rounds, 0.30 to "
        "0.50); one after the other 0.80 ms (1.90 vs 1.10 ms) | yes |"
    ) in text
    assert "| isthmus | 1.50 | 2.00 | 1.10 |" in text
    run.first_events = None
    assert "| one after the other" not in render(run, "2026-01-01")
    assert "| 0.80 ms (1.90 vs 1.10 ms) | **no**" in render(run, "2026-01-01")


def test_take_turns_keeps_each_paths_results_in_round_order() -> None:
    seen: list[str] = []

    def one(path: str) -> int:
        seen.append(path)
        return len(seen)

    lines: list[str] = []
    results = take_turns(["a", "b"], 3, one, str, "x", lines.append)
    assert seen == ["a", "b", "b", "a", "a", "b"]
    assert results == {"a": [1, 4, 5], "b": [2, 3, 6]}  # each path's results in the rounds' order
    assert lines == ["  x round 1: a 1, b 2", "  x round 2: b 3, a 4", "  x round 3: a 5, b 6"]


def test_without_interleaved_figures_the_targets_use_the_sequential_ones() -> None:
    run = _run_with_drift()
    run.interleaved.clear()
    text = render(run, "2026-01-01")
    assert "| Chat, c=16: ≥ 70% of the floor | 3,000 of 5,000 rps (floor) = 60% | **no**" in text
    assert "Interleaved shares" not in text


@needs_wrk
@pytest.mark.anyio
async def test_measure_takes_turns_with_real_wrk_runs(llm_mock: str) -> None:
    body = chat_body("m1", stream=False)
    headers = (("Content-Type", "application/json"),)
    requests = {
        "a": HttpRequest(f"{llm_mock}/v1/chat/completions", body=body, headers=headers, expect="word word"),
        "b": HttpRequest(f"{llm_mock}/v1/chat/completions", body=body, headers=headers, expect="not in the answer"),
    }
    lines: list[str] = []

    def load(request: HttpRequest, connections: int, seconds: float) -> LoadResult:
        return run_wrk(request, connections, seconds)

    with anyio.fail_after(60):
        measured = await anyio.to_thread.run_sync(
            lambda: measure(requests, "chat", 2, load, rounds=2, window=1.0, warmup=1.0, log=lines.append)
        )
    assert [len(measured.rps["a"]), len(measured.rps["b"])] == [2, 2]
    assert min(measured.rps["a"]) > 50 and measured.errors["a"] == 0
    assert measured.errors["b"] > 0 and measured.share("b", "a") is None
    assert lines[0].startswith("  chat c=2 round 1: a ") and lines[1].startswith("  chat c=2 round 2: b ")
