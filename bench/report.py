"""The markdown report of a run: the targets, one table per scenario, streaming, the mocks' headroom, profiles.

Every ratio compares figures from the same run. "Added" latency is a path's percentile minus the direct path's
same percentile at concurrency 1 (percentiles do not subtract exactly, but at c=1 on loopback this is what a
caller sees added). Throughput ratios are path / reference: above 1 is faster than the reference.
"""

from __future__ import annotations

from bench import loop_lag
from bench.attribution_report import attribution_section, profiles_intro
from bench.figures import added, ms, ratio, rps, rps_text, table
from bench.loadgen import LoadResult
from bench.results_model import Run
from bench.targets import CACHE_SECTION, GATEWAY, MEMORY_SECTION, WORKERS_SECTION, target_section

__all__ = ["added", "render"]

SCENARIO_TITLES = {
    "chat": "Chat completion, non-streaming",
    "stream": "Chat completion, streaming (throughput; timings below)",
    "mcp-modern": "MCP tools/call, 2026-07-28 era (`MCP-Protocol-Version` + `_meta`)",
    "mcp-legacy": "MCP tools/call, 2025-era session (`initialize`d `Mcp-Session-Id`)",
    "mcp-stdio": "MCP tools/call, 2026-07-28 era, stdio upstream (direct: the server driven over its pipes)",
}


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
        latency = f"{ms(one.p50_ms)} / {ms(one.p90_ms)} / {ms(one.p99_ms)}" if one else "—"
        add = [added(run, name, scenario, q) for q in ("p50", "p90", "p99")]
        row = [name, latency, " / ".join(ms(a) for a in add) if name != "direct" else "—"]
        row += [rps_text(rps(run, name, scenario, c)) for c in run.connections]
        results = [r for c in run.connections if (r := run.load(name, scenario, c)) is not None]
        info = run.paths[name]
        rss = "—" if info.peak_rss_mib is None else f"{info.peak_rss_mib:.0f}"
        if info.idle_rss_mib is not None:
            rss += f" ({info.idle_rss_mib:.0f})"
        row += [_errors(results), rss]
        row += [ratio(rps(run, name, scenario, c_mid), rps(run, ref, scenario, c_mid)) for ref in refs]
        row += [
            ratio(add[0], added(run, ref, scenario, "p50")) if name != ref else "—" for ref in refs if ref != "direct"
        ]
        rows.append(row)
    return [f"### {SCENARIO_TITLES.get(scenario, scenario)}", "", *table(header, rows), "", *lag_lines(run, scenario)]


def lag_lines(run: Run, scenario: str) -> list[str]:
    """Each Isthmus gateway's own event-loop lag during the scenario's points (`bench.loop_lag`)."""
    lines = []
    for name in run.path_names(scenario):
        points = [(c, counts) for c in run.connections if (counts := run.loop_lag.get((name, scenario, c)))]
        if points:
            each = "; ".join(f"c={c}: {loop_lag.describe(counts)}" for c, counts in points)
            lines.append(f"- Event-loop lag of `{name}` (a probe every {loop_lag.PROBE_INTERVAL * 1000:g} ms): {each}.")
    return [*lines, ""] if lines else []


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
        extra = ms(first["p50"] - direct["first_event_ms"]["p50"]) if direct and name != "direct" else "—"
        rows.append(
            [
                name,
                ms(s["headers_ms"]["p50"]),
                f"{ms(first['p50'])} / {ms(first['p99'])}",
                extra,
                ms(s["total_ms"]["p50"]),
                f"{ms(s['gap_ms']['p50'])} / {ms(s['gap_ms']['p99'])}",
                f"{s['held_back_share']:.1%}",
                str(s["events_per_stream"]),
                f"{s['streams']} ({s['errors']})" + (f": {s['first_error']}" if s.get("first_error") else ""),
            ]
        )
    intro = (
        f"One client in its own process, one stream at a time; the mock paces its chunks {run.stream_gap_ms:g} ms "
        f'apart. "Held back" is the share of gaps under {run.stream_gap_ms / 4:g} ms: events that arrived together.'
    )
    return ["### Streaming timings (c=1)", "", intro, "", *table(header, rows), ""]


def interleaved_section(run: Run) -> list[str]:
    """Each interleaved scenario's figures (`bench.interleaved`): every path's rps round by round."""
    if not run.interleaved and run.first_events is None:
        return []
    lines = [
        "### Interleaved shares",
        "",
        "The paths a c=16 target compares, running together and measured in turns (each idle but for its turn; the "
        "order rotates each round); a share is the median over rounds of the two figures of one round.",
        "",
    ]
    for scenario, figures in run.interleaved.items():
        rounds = max((len(values) for values in figures.rps.values()), default=0)
        header = ["Path", *[f"round {index + 1}" for index in range(rounds)], "errors"]
        rows = [
            [path, *[rps_text(value) for value in values], str(figures.errors.get(path, 0))]
            for path, values in figures.rps.items()
        ]
        lines += [f"{scenario}, c={figures.connections}, {figures.window:g} s windows (rps):", ""]
        lines += [*table(header, rows), ""]
    events = run.first_events
    if events is not None:
        rounds = max((len(values) for values in events.p50_ms.values()), default=0)
        header = ["Path", *[f"round {index + 1}" for index in range(rounds)]]
        rows = [[path, *[ms(value) for value in values]] for path, values in events.p50_ms.items()]
        lines += [f"Paced streams' first event, p50 of {events.streams} streams a turn (ms):", ""]
        lines += [*table(header, rows), ""]
    return lines


def capacity_section(run: Run) -> list[str]:
    rows = []
    for scenario in SCENARIO_TITLES:
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
        rows.append([scenario, rps_text(best), rps_text(seen), f"{best / seen:.1f}×"])
    lines = [
        "### The mocks are not the bottleneck",
        "",
        *table(["Scenario", "mock alone, best rps", "most any other path passed on, rps", "headroom"], rows),
    ]
    for title, result in run.mock_capacity.items():
        lines.append(f"- {title}: {result.rps:,.0f} rps at c={result.connections} (p50 {result.p50_ms:.2f} ms).")
    return [*lines, ""]


def workers_section(run: Run) -> list[str]:
    """Two workers beside one, for the gateway and for the floor, at every concurrency measured."""
    names = [name for name in ("isthmus-w2", "floor-w2") if name in run.paths]
    if not names:
        return []
    rows = []
    for name, single in (("isthmus-w2", GATEWAY), ("floor-w2", "floor")):
        if name not in run.paths:
            continue
        points = sorted(c for (path, scenario, c) in run.loads if path == name and scenario == "chat")
        one = rps(run, single, "chat", 16)
        cells = [
            f"c={c}: {rps_text(rps(run, name, 'chat', c))} rps ({ratio(rps(run, name, 'chat', c), one)})"
            for c in points
        ]
        peak = run.paths[name].peak_rss_mib
        rows.append([name, rps_text(one), "; ".join(cells), "—" if peak is None else f"{peak:.0f}"])
    intro = (
        "Chat, two workers on the machine's two cores, set beside one worker at c=16. wrk and the mock LLM share "
        "the same cores, so two workers cannot get two whole cores; the floor with two workers (`bench.passthrough "
        "--workers 2`, set up the same way) shows what the machine allows. The target's ratio is the gateway's at "
        "c=16 against one worker at c=16."
    )
    header = ["Path", "one worker c=16 rps", "two workers (× one worker c=16)", "peak RSS MiB, all processes"]
    return [f"### {WORKERS_SECTION}", "", intro, "", *table(header, rows), ""]


def memory_section(run: Run) -> list[str]:
    rows = [
        [name, "—" if info.idle_rss_mib is None else f"{info.idle_rss_mib:.0f}", f"{info.peak_rss_mib:.0f}"]
        for name, info in run.paths.items()
        if info.peak_rss_mib is not None
    ]
    if not rows:
        return []
    intro = (
        "VmRSS once ready and VmHWM after the path's load, summed over the process and its children (a stdio "
        "upstream, the workers). What a worker holds at start: `python -X importtime` and tracemalloc of "
        "`isthmus.app` (the tiktoken encodings and Alembic load only when first needed)."
    )
    return [f"### {MEMORY_SECTION}", "", intro, "", *table(["Path", "once started MiB", "peak MiB"], rows), ""]


CACHE_LABELS = {
    "health": "`/health` (the round-trip floor)",
    "miss off": "miss, cache off",
    "miss on": "miss, cache on",
    "same off": "the repeated question, cache off (the echo provider answers)",
    "hit": "exact hit",
    "health sem": "`/health`, semantic gateway",
    "embedding": "one embedding call, straight to the mock",
    "semantic hit": "semantic hit (a new paraphrase each time)",
}


def cache_section(run: Run) -> list[str]:
    figures = run.cache
    if figures is None:
        return []
    rows = [
        [label, f"{int(figures.series[name]['n']):,}", ms(figures.series[name]["p50"]), ms(figures.series[name]["p90"])]
        for name, label in CACHE_LABELS.items()
        if name in figures.series
    ]
    intro = (
        "`bench.cache`: three `isthmus serve` processes (no cache; `cache: {ttl: 1h}`; a semantic cache whose "
        "embeddings come from `bench/mock_embed.py`, a hashed bag of words), the echo provider, one keep-alive "
        "connection each from one client, the series interleaved round by round so the machine's noise falls on all. "
        "Round trips as the client sees them, c=1."
    )
    return [f"### {CACHE_SECTION}", "", intro, "", *table(["Series", "n", "p50 ms", "p90 ms"], rows), ""]


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
    lines += interleaved_section(run)
    lines += stream_section(run)
    lines += workers_section(run)
    lines += memory_section(run)
    lines += cache_section(run)
    lines += capacity_section(run)
    if run.spans:
        lines += [
            f"Telemetry variant: the OTLP sink received {run.spans.get('spans', 0):,} spans in "
            f"{run.spans.get('exports', 0):,} exports ({run.spans.get('rejected', 0)} rejected).",
            "",
        ]
    if run.profiles:
        lines += profiles_intro()
    for title, summary in run.profiles.items():
        lines += [f"### Profile: {title}", "", *attribution_section(run, title), summary, ""]
    if run.skipped:
        lines += ["### Not measured", ""]
        lines += [f"- {path} / {scenario}: {reason}" for (path, scenario), reason in run.skipped.items()]
        lines.append("")
    return "\n".join(lines)
