"""The report subtracts the direct path's latency, compares throughput with every reference, and judges targets."""

from __future__ import annotations

from bench.loadgen import LoadResult
from bench.report import added, render
from bench.results_model import PathInfo, Run


def _load(connections: int, rps: float, p50: float, p99: float, **errors: int) -> LoadResult:
    counts = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0, "bad": 0, **errors}
    return LoadResult(connections, int(rps * 5), 5.0, p50, p50 * 1.5, p99, p50, p99 * 2, counts)


def _run() -> Run:
    run = Run(connections=(1, 16), duration=5, warmup=1)
    for name, kind in (("direct", "direct"), ("floor", "floor"), ("isthmus", "gateway"), ("litellm", "peer")):
        run.paths[name] = PathInfo(name, kind)
    run.paths["isthmus"].peak_rss_mib = 150
    figures = {
        "direct": ((1, 10000, 0.05, 0.2), (16, 20000, 0.5, 1.0)),
        "floor": ((1, 3000, 0.25, 0.6), (16, 5000, 3.0, 6.0)),
        "isthmus": ((1, 1500, 0.65, 2.2), (16, 4000, 4.0, 9.0)),
        "litellm": ((1, 100, 9.05, 30.0), (16, 150, 100.0, 300.0)),
    }
    for name, points in figures.items():
        for connections, rps, p50, p99 in points:
            run.loads[(name, "chat", connections)] = _load(connections, rps, p50, p99)
    run.loads[("isthmus", "mcp-modern", 1)] = _load(1, 500, 2.05, 5.0, bad=3)
    run.loads[("direct", "mcp-modern", 1)] = _load(1, 10000, 0.05, 0.2)
    run.skipped[("litellm", "mcp-modern")] = "tools/list answered 400"
    return run


def test_added_latency_is_the_path_minus_direct_at_the_same_percentile() -> None:
    run = _run()
    assert added(run, "isthmus", "chat", "p50") == 0.65 - 0.05
    assert added(run, "isthmus", "chat", "p99") == 2.2 - 0.2
    assert added(run, "direct", "chat", "p50") == 0
    assert added(run, "isthmus", "stream", "p50") is None


def test_the_report_compares_with_every_reference_and_judges_the_targets() -> None:
    text = render(_run(), "2026-01-01")
    chat_row = next(line for line in text.splitlines() if line.startswith("| isthmus | 0.65"))
    cells = [cell.strip() for cell in chat_row.strip("|").split("|")]
    # c=16 rps vs direct, floor, litellm; then added p50 vs floor (0.6 / 0.2) and vs litellm (0.6 / 9.0)
    assert cells[-5:] == ["0.20×", "0.80×", "26.67×", "3.00×", "0.07×"]
    assert "| LLM non-streaming c=1: added p50 ≤ 1 ms, p99 ≤ 3 ms | p50 0.60 ms, p99 2.00 ms | yes |" in text
    assert "| chat c=16: ≥ 70% of the floor | 4,000 of 5,000 rps = 80% | yes |" in text
    assert "| chat c=16: ≥ 5× litellm | 4,000 vs 150 rps = 26.7× | yes |" in text
    assert "| MCP tools/call (mcp-modern) c=1: added p50 ≤ 1.5 ms | 2.00 ms | **no** |" in text
    assert "| Peak RSS under load ≤ 200 MiB (isthmus) | 150 MiB | yes |" in text
    assert "bad 3 / 2,500" in text
    assert "- litellm / mcp-modern: tools/list answered 400" in text
