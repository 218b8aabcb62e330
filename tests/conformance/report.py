"""The table `python -m tests.conformance.run` prints, and the machine-readable results it saves."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tests.conformance.compare import Checks, Gap, KnownGaps, Verdict


@dataclass(frozen=True)
class VersionRun:
    """One spec version: the checks of the direct run and of the run through the hub."""

    version: str
    direct: Checks
    hub: Checks
    gaps: list[Gap]
    messages: dict[tuple[str, str], str]
    """What the suite said about the hub's failing checks, by (scenario, check id)."""

    def passed(self, checks: Checks, scenario: str | None = None) -> tuple[int, int]:
        """(passing, total) over the checks the direct run made, for one scenario or all of them. A check only the
        hub's run made is one that failed there (the suite adds a catch-all check when a scenario bails out); it
        shows as a gap, not in these counts."""
        scenarios = [scenario] if scenario else sorted(self.direct)
        passing = total = 0
        for name in scenarios:
            ids = self.direct.get(name, {}).keys()
            total += len(ids)
            passing += sum(checks.get(name, {}).get(check) == "SUCCESS" for check in ids)
        return passing, total


def _fraction(counts: tuple[int, int]) -> str:
    return f"{counts[0]}/{counts[1]}"


def scenario_state(run: VersionRun, scenario: str, known: KnownGaps) -> str:
    mine = [gap for gap in run.gaps if gap.scenario == scenario]
    fixed = [key for key in known if key[:2] == (run.version, scenario) and key not in {g.key for g in mine}]
    new = [gap for gap in mine if gap.key not in known]
    if new:
        return f"NEW GAP: {', '.join(gap.check for gap in new)}"
    if fixed:
        return f"FIXED, remove from the known gaps: {', '.join(sorted(key[2] for key in fixed))}"
    return f"known gap ({len(mine)})" if mine else "ok"


def table(run: VersionRun, known: KnownGaps) -> str:
    scenarios = sorted(run.direct.keys() | run.hub.keys())
    width = max([len("scenario"), *map(len, scenarios)])
    lines = [f"spec version {run.version}", f"  {'scenario':<{width}}  {'direct':>7}  {'hub':>7}  through the hub"]
    for scenario in scenarios:
        direct, hub = _fraction(run.passed(run.direct, scenario)), _fraction(run.passed(run.hub, scenario))
        lines.append(f"  {scenario:<{width}}  {direct:>7}  {hub:>7}  {scenario_state(run, scenario, known)}")
    direct, hub = _fraction(run.passed(run.direct)), _fraction(run.passed(run.hub))
    lines.append(f"  {'checks passing':<{width}}  {direct:>7}  {hub:>7}")
    return "\n".join(lines)


def details(runs: list[VersionRun], verdict: Verdict) -> list[str]:
    """What a reader must act on: new gaps (with the suite's message) and gaps now closed."""
    messages = {(run.version, *key): text for run in runs for key, text in run.messages.items()}
    lines: list[str] = []
    for gap in verdict.new:
        said = messages.get(gap.key, "")
        lines.append(f"NEW GAP {gap.version} {gap.scenario}:{gap.check}: {gap.direct} directly, {gap.hub} via the hub")
        if said:
            lines.append(f"    {said}")
    lines.extend(f"CLOSED {version} {scenario}:{check}: passes now" for version, scenario, check in verdict.closed)
    return lines


def results_document(
    runs: list[VersionRun], verdict: Verdict, problems: list[str], suite: str, seconds: float
) -> dict[str, object]:
    """Everything a later reader needs, as JSON-ready data."""
    return {
        "suite": suite,
        "seconds": round(seconds, 1),
        "ok": verdict.ok and not problems,
        "direct_failures": problems,
        "new_gaps": [asdict(gap) for gap in verdict.new],
        "closed_gaps": [list(key) for key in verdict.closed],
        "versions": {
            run.version: {
                "direct_passed": run.passed(run.direct)[0],
                "hub_passed": run.passed(run.hub)[0],
                "checks": run.passed(run.direct)[1],
                "gaps": [
                    {**asdict(gap), "message": run.messages.get((gap.scenario, gap.check), "")} for gap in run.gaps
                ],
                "direct": run.direct,
                "hub": run.hub,
            }
            for run in runs
        },
    }
