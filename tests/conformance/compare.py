"""Reading the suite's per-scenario results, and judging the hub's against the direct run's, check by check.

A check is one `(scenario, check id)`. An id the suite emits more than once in a scenario counts once, at its worst
status (as the suite's own baselines do). `INFO` entries are logs, not verdicts, and are left out. A **gap** is a
check the hub scores lower on than the test server did directly: FAILURE or absent below WARNING below SKIPPED
below SUCCESS (a check absent from the direct run counts as a pass there: the hub must not add failures either).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

GRADES = {"SUCCESS": 3, "WARNING": 2, "SKIPPED": 1, "FAILURE": 0}
ABSENT = "ABSENT"
NOT_GRADED = frozenset({"INFO"})
# `<output-dir>/server-<scenario>-<ISO time with - for :>/checks.json`
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")

Checks = dict[str, dict[str, str]]
"""scenario -> check id -> status"""


def grade(status: str) -> int:
    return GRADES.get(status, 0)


def collapse(entries: list[dict[str, object]]) -> dict[str, str]:
    """One status per check id: the worst of its occurrences; INFO entries dropped."""
    statuses: dict[str, str] = {}
    for entry in entries:
        check, status = str(entry["id"]), str(entry["status"])
        if status in NOT_GRADED:
            continue
        if check not in statuses or grade(status) < grade(statuses[check]):
            statuses[check] = status
    return statuses


def _scenario_files(output_dir: Path) -> list[tuple[str, list[dict[str, object]]]]:
    found: list[tuple[str, list[dict[str, object]]]] = []
    for entry in sorted(output_dir.iterdir()) if output_dir.is_dir() else []:
        match = RESULT_DIR.match(entry.name)
        if match and (entry / "checks.json").is_file():
            found.append((match["scenario"], json.loads((entry / "checks.json").read_text())))
    return found


def read_results(output_dir: Path) -> Checks:
    """The checks of every scenario the suite wrote under `output_dir`."""
    return {scenario: collapse(entries) for scenario, entries in _scenario_files(output_dir)}


def read_messages(output_dir: Path) -> dict[tuple[str, str], str]:
    """The suite's error message for each check that did not pass, by (scenario, check id)."""
    messages: dict[tuple[str, str], str] = {}
    for scenario, entries in _scenario_files(output_dir):
        for entry in entries:
            if entry.get("status") in ("FAILURE", "WARNING") and entry.get("errorMessage"):
                messages.setdefault((scenario, str(entry["id"])), str(entry["errorMessage"]))
    return messages


@dataclass(frozen=True, order=True)
class Gap:
    version: str
    scenario: str
    check: str
    direct: str
    hub: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.version, self.scenario, self.check)


def gaps(version: str, direct: Checks, hub: Checks) -> list[Gap]:
    """Every check the hub scores lower on than the direct run."""
    found: list[Gap] = []
    for scenario in sorted(direct.keys() | hub.keys()):
        ours, theirs = direct.get(scenario, {}), hub.get(scenario, {})
        for check in sorted(ours.keys() | theirs.keys()):
            before, after = ours.get(check, "SUCCESS"), theirs.get(check, ABSENT)
            if grade(after) < grade(before):
                found.append(Gap(version, scenario, check, ours.get(check, ABSENT), after))
    return found


def direct_failures(version: str, direct: Checks) -> list[str]:
    """Checks the test server itself does not pass: it has to pass all of them for the comparison to mean much."""
    return [
        f"{version} {scenario}:{check} is {status} directly"
        for scenario, statuses in sorted(direct.items())
        for check, status in sorted(statuses.items())
        if status != "SUCCESS"
    ]


KnownGaps = set[tuple[str, str, str]]


def load_known_gaps(path: Path) -> KnownGaps:
    """`{version: {scenario: [check id, ...]}}` from the checked-in YAML file (absent file: none)."""
    data = yaml.safe_load(path.read_text()) if path.exists() else None
    if data is None:
        return set()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of spec versions to scenarios")
    known: KnownGaps = set()
    for version, scenarios in data.items():
        if not isinstance(version, str):
            raise ValueError(f"{path}: spec version {version} must be quoted ('{version}'), or YAML reads a date")
        if not isinstance(scenarios, dict):
            raise ValueError(f"{path}: {version}: expected a mapping of scenarios to lists of check ids")
        for scenario, checks in scenarios.items():
            if not isinstance(checks, list) or not all(isinstance(check, str) for check in checks):
                raise ValueError(f"{path}: {version} {scenario}: expected a list of check ids")
            known.update((version, str(scenario), check) for check in checks)
    return known


def dump_known_gaps(known: KnownGaps) -> str:
    """The YAML `load_known_gaps` reads back as `known`."""
    tree: dict[str, dict[str, list[str]]] = {}
    for version, scenario, check in sorted(known):
        tree.setdefault(version, {}).setdefault(scenario, []).append(check)
    # safe_dump quotes the date-like version keys, so they stay strings when read back.
    return yaml.safe_dump(tree, sort_keys=True, default_flow_style=False) if tree else "{}\n"


@dataclass(frozen=True)
class Verdict:
    new: list[Gap]
    """Gaps not in the known list: the hub got worse."""
    closed: list[tuple[str, str, str]]
    """Known gaps the hub now passes: the list must shrink."""

    @property
    def ok(self) -> bool:
        return not self.new and not self.closed


def judge(found: list[Gap], known: KnownGaps, versions: set[str]) -> Verdict:
    """Compare this run's gaps with the known list (only for the spec versions that ran)."""
    keys = {gap.key for gap in found}
    return Verdict(
        new=[gap for gap in found if gap.key not in known],
        closed=sorted(key for key in known - keys if key[0] in versions),
    )
