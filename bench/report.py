"""The markdown report of a run: the targets, one table per scenario, streaming, the mocks' headroom, profiles.

Every ratio compares figures from the same run. "Added" latency is a path's percentile minus the direct path's
same percentile at concurrency 1 (percentiles do not subtract exactly, but at c=1 on loopback this is what a
caller sees added). Throughput ratios are path / reference: above 1 is faster than the reference.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.loadgen import LoadResult
from bench.results_model import Run

SCENARIO_TITLES = {
    "chat": "Chat completion, non-streaming",
    "stream": "Chat completion, streaming (throughput; timings below)",
    "mcp-modern": "MCP tools/call, 2026-07-28 era (`MCP-Protocol-Version` + `_meta`)",
    "mcp-legacy": "MCP tools/call, 2025-era session (`initialize`d `Mcp-Session-Id`)",
}
GATEWAY = "isthmus"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _rps(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator <= 0:
        return "—"
    return f"{numerator / denominator:.2f}×"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def added(run: Run, path: str, scenario: str, quantile: str) -> float | None:
    mine, direct = run.load(path, scenario, 1), run.load("direct", scenario, 1)
    if mine is None or direct is None:
        return None
    value: float = getattr(mine, f"{quantile}_ms") - getattr(direct, f"{quantile}_ms")
    return value


def rps(run: Run, path: str, scenario: str, connections: int) -> float | None:
    result = run.load(path, scenario, connections)
    return None if result is None else result.rps


def _errors(results: list[LoadResult]) -> str:
    totals: dict[str, int] = {}
    for result in results:
        for name, count in result.errors.items():
            totals[name] = totals.get(name, 0) + count
    requests = sum(r.requests for r in results)
    wrong = {name: count for name, count in totals.items() if count}
    if not wrong:
        return f"0 / {requests:,}"
    return ", ".join(f"{name} {count:,}" for name, count in wrong.items()) + f" / {requests:,}"


def references(run: Run) -> list[str]:
    """The paths others are compared to: direct, the floor, and every peer measured."""
    return ["direct", "floor", *[name for name, info in run.paths.items() if info.kind == "peer"]]


def scenario_section(run: Run, scenario: str) -> list[str]:
    names = run.path_names(scenario)
    if not names:
        return []
    refs = [ref for ref in references(run) if ref in names]
    c_mid = 16 if 16 in run.connections else run.connections[-1]
    header = ["Path", "c=1 p50 / p90 / p99 ms", "added p50 / p90 / p99 ms"]
    header += [f"c={c} rps" for c in run.connections]
    header += ["errors / requests", "peak RSS MiB (idle)"]
    header += [f"c={c_mid} rps vs {ref}" for ref in refs]
    header += [f"added p50 vs {ref}" for ref in refs if ref != "direct"]
    rows: list[list[str]] = []
    for name in names:
        one = run.load(name, scenario, 1)
        latency = f"{_ms(one.p50_ms)} / {_ms(one.p90_ms)} / {_ms(one.p99_ms)}" if one else "—"
        add = [added(run, name, scenario, q) for q in ("p50", "p90", "p99")]
        row = [name, latency, " / ".join(_ms(a) for a in add) if name != "direct" else "—"]
        row += [_rps(rps(run, name, scenario, c)) for c in run.connections]
        results = [r for c in run.connections if (r := run.load(name, scenario, c)) is not None]
        info = run.paths[name]
        rss = "—" if info.peak_rss_mib is None else f"{info.peak_rss_mib:.0f}"
        if info.idle_rss_mib is not None:
            rss += f" ({info.idle_rss_mib:.0f})"
        row += [_errors(results), rss]
        row += [_ratio(rps(run, name, scenario, c_mid), rps(run, ref, scenario, c_mid)) for ref in refs]
        row += [
            _ratio(add[0], added(run, ref, scenario, "p50")) if name != ref else "—" for ref in refs if ref != "direct"
        ]
        rows.append(row)
    return [f"### {SCENARIO_TITLES.get(scenario, scenario)}", "", *_table(header, rows), ""]


def stream_section(run: Run) -> list[str]:
    if not run.streams:
        return []
    direct = run.streams.get("direct")
    header = [
        "Path",
        "headers p50 ms",
        "first event p50 / p99 ms",
        "added first event p50 ms",
        "total p50 ms",
        "gap p50 / p99 ms",
        "held back",
        "events",
        "streams (errors)",
    ]
    rows = []
    for name, s in run.streams.items():
        first = s["first_event_ms"]
        extra = _ms(first["p50"] - direct["first_event_ms"]["p50"]) if direct and name != "direct" else "—"
        rows.append(
            [
                name,
                _ms(s["headers_ms"]["p50"]),
                f"{_ms(first['p50'])} / {_ms(first['p99'])}",
                extra,
                _ms(s["total_ms"]["p50"]),
                f"{_ms(s['gap_ms']['p50'])} / {_ms(s['gap_ms']['p99'])}",
                f"{s['held_back_share']:.1%}",
                str(s["events_per_stream"]),
                f"{s['streams']} ({s['errors']})" + (f": {s['first_error']}" if s.get("first_error") else ""),
            ]
        )
    intro = (
        f"One client in its own process, one stream at a time; the mock paces its chunks {run.stream_gap_ms:g} ms "
        f'apart. "Held back" is the share of gaps under {run.stream_gap_ms / 4:g} ms: events that arrived together.'
    )
    return ["### Streaming timings (c=1)", "", intro, "", *_table(header, rows), ""]


def capacity_section(run: Run) -> list[str]:
    rows = []
    for scenario in ("chat", "stream", "mcp-modern", "mcp-legacy"):
        direct = [r for c in run.connections if (r := run.load("direct", scenario, c)) is not None]
        others = [
            r.rps
            for (path, s, _), r in run.loads.items()
            if s == scenario and path != "direct" and run.paths[path].kind != "direct"
        ]
        if not direct or not others:
            continue
        best = max(r.rps for r in direct)
        seen = max(others)
        rows.append([scenario, _rps(best), _rps(seen), f"{best / seen:.1f}×"])
    lines = [
        "### The mocks are not the bottleneck",
        "",
        *_table(["Scenario", "mock alone, best rps", "most any other path passed on, rps", "headroom"], rows),
    ]
    for title, result in run.mock_capacity.items():
        lines.append(f"- {title}: {result.rps:,.0f} rps at c={result.connections} (p50 {result.p50_ms:.2f} ms).")
    return [*lines, ""]


def target_section(run: Run) -> list[str]:
    rows: list[list[str]] = []

    def check(target: str, measured: str, met: bool | None) -> None:
        rows.append([target, measured, "—" if met is None else ("yes" if met else "**no**")])

    chat_p50, chat_p99 = added(run, GATEWAY, "chat", "p50"), added(run, GATEWAY, "chat", "p99")
    check(
        "LLM non-streaming c=1: added p50 ≤ 1 ms, p99 ≤ 3 ms",
        f"p50 {_ms(chat_p50)} ms, p99 {_ms(chat_p99)} ms",
        None if chat_p50 is None or chat_p99 is None else chat_p50 <= 1 and chat_p99 <= 3,
    )
    for scenario in ("mcp-modern", "mcp-legacy"):
        value = added(run, GATEWAY, scenario, "p50")
        check(
            f"MCP tools/call ({scenario}) c=1: added p50 ≤ 1.5 ms",
            f"{_ms(value)} ms",
            None if value is None else value <= 1.5,
        )
    peers = [name for name, info in run.paths.items() if info.kind == "peer"]
    for scenario in ("chat", "mcp-modern", "mcp-legacy"):
        mine = rps(run, GATEWAY, scenario, 16)
        floor = rps(run, "floor", scenario, 16)
        share = None if mine is None or floor is None else mine / floor
        check(
            f"{scenario} c=16: ≥ 70% of the floor",
            f"{_rps(mine)} of {_rps(floor)} rps = {share:.0%}" if share is not None else "—",
            None if share is None else share >= 0.7,
        )
        measured_peers = [(p, rps(run, p, scenario, 16)) for p in peers if rps(run, p, scenario, 16)]
        if not measured_peers:
            why = "no peer served it (see Not measured)" if peers else "no peer in this run (`make bench-peers`)"
            check(f"{scenario} c=16: ≥ 5× the peer", why, None)
        for peer, theirs in measured_peers:
            ratio = None if mine is None or theirs is None else mine / theirs
            check(
                f"{scenario} c=16: ≥ 5× {peer}",
                f"{_rps(mine)} vs {_rps(theirs)} rps = {ratio:.1f}×" if ratio is not None else "—",
                None if ratio is None else ratio >= 5,
            )
    mine_stream, direct_stream = run.streams.get(GATEWAY), run.streams.get("direct")
    if mine_stream and direct_stream:
        ttfb = mine_stream["first_event_ms"]["p50"] - direct_stream["first_event_ms"]["p50"]
        check("Streaming: first event adds ≤ 1 ms (p50)", f"{ttfb:.2f} ms", ttfb <= 1)
        held = mine_stream["held_back_share"]
        gap, direct_gap = mine_stream["gap_ms"]["p50"], direct_stream["gap_ms"]["p50"]
        check(
            "Streaming: chunks not held back (gap p50 within 0.25 ms of direct, < 5% of gaps under a quarter)",
            f"gap p50 {gap:.2f} ms (direct {direct_gap:.2f}), held back {held:.1%}",
            abs(gap - direct_gap) <= 0.25 and held < 0.05,
        )
    for variant, label, limit in (
        ("isthmus+gov", "governance on (key, budgets, rate limits, Redis)", 0.2),
        ("isthmus+otel", "telemetry on (spans exported)", 0.1),
    ):
        for scenario in ("chat", "mcp-modern"):
            base, on = rps(run, GATEWAY, scenario, 16), rps(run, variant, scenario, 16)
            if base is None or on is None:
                continue
            cost = 1 - on / base
            check(
                f"{label}, {scenario} c=16: costs ≤ {limit:.0%}",
                f"{cost:.0%} ({_rps(on)} vs {_rps(base)} rps)",
                cost <= limit,
            )
    for name, info in run.paths.items():
        if name.startswith(GATEWAY) and info.peak_rss_mib is not None:
            idle = f" ({info.idle_rss_mib:.0f} MiB once started)" if info.idle_rss_mib is not None else ""
            measured = f"{info.peak_rss_mib:.0f} MiB{idle}"
            check(f"Peak RSS under load ≤ 200 MiB ({name})", measured, info.peak_rss_mib <= 200)
    return ["## Targets (issue 8)", "", *_table(["Target", "Measured", "Met"], rows), ""]


def render(run: Run, date: str) -> str:
    machine = run.machine
    lines = [
        f"# Isthmus benchmark, {date}",
        "",
        f"- Machine: {machine.get('cores', '?')} cores ({machine.get('cpu', '?')}), {machine.get('memory', '?')}, "
        f"{machine.get('os', '?')}",
        f"- Versions: {machine.get('versions', '?')}",
        f"- Method: wrk {machine.get('wrk', '?')} (`-t1`, closed loop, own process), {run.warmup:g} s warm-up per "
        f"scenario then {run.duration:g} s per point at c = {', '.join(map(str, run.connections))}; mocks, gateways "
        "and wrk share the machine's cores. Added latency = path minus direct at the same percentile, c=1.",
        f"- Run took {run.seconds:.0f} s.",
        *[f"- {note}" for note in run.notes],
        "",
        *target_section(run),
        "## Results",
        "",
    ]
    for scenario in SCENARIO_TITLES:
        lines += scenario_section(run, scenario)
    lines += stream_section(run)
    lines += capacity_section(run)
    if run.spans:
        lines += [
            f"Telemetry variant: the OTLP sink received {run.spans.get('spans', 0):,} spans in "
            f"{run.spans.get('exports', 0):,} exports ({run.spans.get('rejected', 0)} rejected).",
            "",
        ]
    for title, summary in run.profiles.items():
        lines += [f"### Profile: {title}", "", summary, ""]
    if run.skipped:
        lines += ["### Not measured", ""]
        lines += [f"- {path} / {scenario}: {reason}" for (path, scenario), reason in run.skipped.items()]
        lines.append("")
    return "\n".join(lines)
