"""Issue 13's targets and issue 16's (the response cache), judged from the figures of one run; a missed target
points to where its time goes.

Every comparison is within the run: the gateway against `direct` (added latency), the floor (`bench.passthrough` in
front of the same upstream), the stdio server's own rate, one worker, or a peer measured the same way. The shares of
c=16 throughput against the floor and against plain `isthmus` are judged by their interleaved measurement when the
run has one (`bench.interleaved`: both sides measured within seconds of each other, round after round), with the
figures measured one path after the other shown beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.attribution_report import PROFILED_AT, verdict
from bench.figures import added, anchor, ms, rps, rps_text, table
from bench.interleaved import Share
from bench.results_model import Run

GATEWAY = "isthmus"
MEMORY_SECTION = "Resident memory"
WORKERS_SECTION = "Two workers"
CACHE_SECTION = "Response cache"


@dataclass
class Targets:
    """The rows of the targets table, as they are judged."""

    run: Run
    rows: list[list[str]] = field(default_factory=list)

    def check(self, target: str, measured: str, met: bool | None, look: str, why: str = "") -> None:
        """`look`: the profile (path, scenario) or the section that shows where a missed target's time goes;
        `why`: what caps the figure, when something outside the gateway does."""
        if met is None:
            judged = "—"
        elif met:
            judged = "yes"
        else:
            judged = "**no**: " + "; ".join(part for part in (why, self._pointer(look)) if part)
        self.rows.append([target, measured, judged])

    def _pointer(self, look: str) -> str:
        """The profile's figure (how much of a request's CPU is Isthmus's code) and a link to it, or the section."""
        if look in (MEMORY_SECTION, WORKERS_SECTION, CACHE_SECTION):
            return f"see [{look}]({anchor(look)})"
        title = f"{look}, c={PROFILED_AT}"
        if title not in self.run.profiles:
            return f"no profile of {look} in this run"
        link = f"see [Profile: {title}]({anchor('Profile: ' + title)})"
        figure = verdict(self.run, title)
        return link if figure is None else f"{figure}; {link}"


def _share(mine: float | None, reference: float | None) -> float | None:
    return None if mine is None or reference is None or reference <= 0 else mine / reference


def _share_text(mine: float | None, reference: float | None, of: str) -> str:
    share = _share(mine, reference)
    return "—" if share is None else f"{rps_text(mine)} of {rps_text(reference)} rps {of} = {share:.0%}"


def _interleaved(run: Run, scenario: str, path: str, reference: str, *, cost: bool = False) -> Share | None:
    """`path`'s interleaved share of `reference`'s c=16 rps (or what it costs against it), if the run has it."""
    measured = run.interleaved.get(scenario)
    if measured is None:
        return None
    return measured.cost(path, reference) if cost else measured.share(path, reference)


def _throughput_share(t: Targets, target: str, scenario: str, least: float, look: str) -> None:
    """The gateway's c=16 rps as a share of the floor's: interleaved when measured so, else one after the other."""
    run = t.run
    mine, floor = rps(run, GATEWAY, scenario, 16), rps(run, "floor", scenario, 16)
    apart = _share_text(mine, floor, "(floor)")
    turns = _interleaved(run, scenario, GATEWAY, "floor")
    if turns is not None:
        t.check(target, f"{turns.text()}; one after the other {apart}", turns.median >= least, look)
        return
    share = _share(mine, floor)
    t.check(target, apart, None if share is None else share >= least, look)


def mcp_targets(t: Targets) -> None:
    run = t.run
    look = f"{GATEWAY}, mcp-modern"
    p50, p99 = added(run, GATEWAY, "mcp-modern", "p50"), added(run, GATEWAY, "mcp-modern", "p99")
    t.check(
        "MCP tools/call, 2026-07-28, HTTP upstream, c=1: added p50 ≤ 1 ms, p99 ≤ 3 ms",
        f"p50 {ms(p50)} ms, p99 {ms(p99)} ms",
        None if p50 is None or p99 is None else p50 <= 1 and p99 <= 3,
        look,
    )
    _throughput_share(t, "MCP tools/call, 2026-07-28, c=16: ≥ 50% of the floor", "mcp-modern", 0.5, look)
    legacy_p50 = added(run, GATEWAY, "mcp-legacy", "p50")
    legacy, modern = rps(run, GATEWAY, "mcp-legacy", 16), rps(run, GATEWAY, "mcp-modern", 16)
    met = None
    if legacy_p50 is not None and p50 is not None and legacy is not None and modern:
        met = legacy_p50 <= 1.25 * max(p50, 0.0) and legacy >= 0.75 * modern
    t.check(
        "MCP tools/call in a 2025 session: within 25% of 2026-07-28 (added p50 c=1, rps c=16)",
        f"added p50 {ms(legacy_p50)} vs {ms(p50)} ms; {rps_text(legacy)} vs {rps_text(modern)} rps",
        met,
        f"{GATEWAY}, mcp-legacy",
    )
    stdio, own = rps(run, "isthmus-stdio", "mcp-stdio", 16), rps(run, "direct", "mcp-stdio", 16)
    share = _share(stdio, own)
    t.check(
        "MCP tools/call, stdio upstream, c=16: ≥ 50% of the server's own rate over stdio (16 in flight)",
        _share_text(stdio, own, "(stdio driver)"),
        None if share is None else share >= 0.5,
        "isthmus-stdio, mcp-stdio",
        _http_cap(run, own),
    )


def _http_cap(run: Run, own: float | None) -> str:
    """A gateway answers over HTTP, so no stdio upstream's rate through it passes the bare HTTP pass-through's."""
    floor = rps(run, "floor", "mcp-modern", 16)
    cap = _share(floor, own)
    if cap is None or floor is None:
        return ""
    return f"the HTTP floor caps it at {cap:.0%}: a bare pass-through answers {rps_text(floor)} rps (mcp-modern, c=16)"


def chat_targets(t: Targets) -> None:
    run = t.run
    look = f"{GATEWAY}, chat"
    p50, p99 = added(run, GATEWAY, "chat", "p50"), added(run, GATEWAY, "chat", "p99")
    t.check(
        "Chat, c=1: added p50 ≤ 0.5 ms, p99 ≤ 2 ms",
        f"p50 {ms(p50)} ms, p99 {ms(p99)} ms",
        None if p50 is None or p99 is None else p50 <= 0.5 and p99 <= 2,
        look,
    )
    _throughput_share(t, "Chat, c=16: ≥ 70% of the floor", "chat", 0.7, look)
    mine_stream, floor_stream = run.streams.get(GATEWAY), run.streams.get("floor")
    turns = None if run.first_events is None else run.first_events.after(GATEWAY, "floor")
    if mine_stream and floor_stream:
        after = mine_stream["first_event_ms"]["p50"] - floor_stream["first_event_ms"]["p50"]
        apart = (
            f"{after:.2f} ms ({mine_stream['first_event_ms']['p50']:.2f} vs "
            f"{floor_stream['first_event_ms']['p50']:.2f} ms)"
        )
        if turns is not None:
            apart = (
                f"{turns.median:.2f} ms (median of {turns.rounds} interleaved rounds, {turns.low:.2f} to "
                f"{turns.high:.2f}); one after the other {apart}"
            )
            after = turns.median
        t.check("Streaming: first event ≤ 0.5 ms after the floor's (p50)", apart, after <= 0.5, f"{GATEWAY}, stream")
        held, floor_held = mine_stream["held_back_share"], floor_stream["held_back_share"]
        gap, floor_gap = mine_stream["gap_ms"]["p50"], floor_stream["gap_ms"]["p50"]
        t.check(
            "Streaming: chunks never held back (no more gaps under a quarter of the pacing than the floor, "
            "+1 point; gap p50 within 0.25 ms of the floor's)",
            f"held back {held:.1%} (floor {floor_held:.1%}), gap p50 {gap:.2f} ms (floor {floor_gap:.2f})",
            held <= floor_held + 0.01 and abs(gap - floor_gap) <= 0.25,
            f"{GATEWAY}, stream",
        )
    for variant, label, limit in (
        ("isthmus+gov", "Governance on (Redis-backed rate limits and budgets at three levels)", 0.2),
        ("isthmus+otel", "Telemetry on (OTLP export of every span)", 0.1),
        ("isthmus+guard", "Guardrails on (issue 15: the secrets and PII rules)", 0.15),
    ):
        base, on = rps(run, GATEWAY, "chat", 16), rps(run, variant, "chat", 16)
        cost = None if base is None or on is None or base <= 0 else 1 - on / base
        apart = "—" if cost is None else f"{cost:.0%} ({rps_text(on)} vs {rps_text(base)} rps)"
        turns = _interleaved(run, "chat", variant, GATEWAY, cost=True)
        target = f"{label}: costs ≤ {limit:.0%} of chat throughput (c=16)"
        if turns is not None:
            t.check(target, f"{turns.text()}; one after the other {apart}", turns.median <= limit, f"{variant}, chat")
        else:
            t.check(target, apart, None if cost is None else cost <= limit, f"{variant}, chat")


def scale_targets(t: Targets) -> None:
    run = t.run
    one = rps(run, GATEWAY, "chat", 16)
    two = rps(run, "isthmus-w2", "chat", 16)
    share = _share(two, one)
    floors = _share(rps(run, "floor-w2", "chat", 16), rps(run, "floor", "chat", 16))
    floor_text = "" if floors is None else f"; the floor's own: {floors:.2f}×"
    ceiling = ""
    if floors is not None and share is not None:
        ceiling = f"this machine's ceiling is the floor's own {floors:.2f}×"
        if floors < 1.6:
            ceiling += ", under 1.6×" + ("; the gateway reaches it" if share >= floors else "")
    t.check(
        "`isthmus serve --workers 2` ≥ 1.6× one worker (chat, c=16 both)",
        "—" if share is None else f"{share:.2f}× ({rps_text(two)} vs {rps_text(one)} rps){floor_text}",
        None if share is None else share >= 1.6,
        WORKERS_SECTION,
        ceiling,
    )
    info = run.paths.get(GATEWAY)
    if info is not None and info.peak_rss_mib is not None:
        idle = f" ({info.idle_rss_mib:.0f} MiB once started)" if info.idle_rss_mib is not None else ""
        t.check(
            "Peak RSS of one worker under load ≤ 150 MiB",
            f"{info.peak_rss_mib:.0f} MiB{idle}",
            info.peak_rss_mib <= 150,
            MEMORY_SECTION,
        )


def peer_targets(t: Targets) -> None:
    run = t.run
    peers = [name for name, info in run.paths.items() if info.kind == "peer"]
    wanted = (("chat", "litellm", 15.0), ("mcp-modern", "contextforge", 10.0), ("mcp-legacy", "contextforge", 10.0))
    for scenario, family, factor in wanted:
        mine = rps(run, GATEWAY, scenario, 16)
        measured = [(p, rps(run, p, scenario, 16)) for p in peers if p.startswith(family)]
        measured = [(p, theirs) for p, theirs in measured if theirs]
        if not measured:
            present = any(p.startswith(family) for p in peers)
            why = "did not serve it (see Not measured)" if present else "is not installed (`make bench-peers`)"
            t.check(f"{scenario} c=16: ≥ {factor:g}× {family}", f"{family} {why}", None, "")
        for peer, theirs in measured:
            share = _share(mine, theirs)
            t.check(
                f"{scenario} c=16: ≥ {factor:g}× {peer}",
                "—" if share is None else f"{rps_text(mine)} vs {rps_text(theirs)} rps = {share:.1f}×",
                None if share is None else share >= factor,
                f"{GATEWAY}, {scenario}",
            )


def cache_targets(t: Targets) -> None:
    """Issue 16's: what answering from the cache adds to a round trip, and what the cache costs a miss."""
    figures = t.run.cache
    if figures is None:
        t.check("Response cache (issue 16)", "not measured (see Not measured)", None, "")
        return
    t.check(
        "Cache (issue 16), exact hit, c=1: p50 ≤ 1 ms over a `/health` round trip",
        f"{ms(figures.hit_added)} ms ({ms(figures.p50('hit'))} vs {ms(figures.p50('health'))} ms)",
        figures.hit_added <= 1,
        CACHE_SECTION,
    )
    t.check(
        "Cache (issue 16), semantic hit, c=1: p50 ≤ 2 ms over `/health` plus the embedding call",
        f"{ms(figures.semantic_added)} ms ({ms(figures.p50('semantic hit'))} vs {ms(figures.p50('health sem'))} "
        f"+ {ms(figures.p50('embedding'))} ms); {sum(figures.not_semantic.values())} paraphrases missed",
        figures.semantic_added <= 2 and not figures.not_semantic,
        CACHE_SECTION,
    )
    t.check(
        "Cache (issue 16), miss, c=1: p50 ≤ 0.3 ms more than with the cache off",
        f"{ms(figures.miss_added)} ms ({ms(figures.p50('miss on'))} vs {ms(figures.p50('miss off'))} ms)",
        figures.miss_added <= 0.3,
        CACHE_SECTION,
    )


def target_section(run: Run) -> list[str]:
    targets = Targets(run)
    for judge in (mcp_targets, chat_targets, scale_targets, peer_targets, cache_targets):
        judge(targets)
    return ["## Targets (issues 13, 15, 16)", "", *table(["Target", "Measured", "Met"], targets.rows), ""]
