"""Judging the hub's conformance results against the direct run's, and the known-gap list."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from tests.conformance.compare import (
    Gap,
    collapse,
    direct_failures,
    dump_known_gaps,
    gaps,
    judge,
    load_known_gaps,
    read_messages,
    read_results,
)
from tests.conformance.report import VersionRun, scenario_state, table

V1, V2 = "2025-11-25", "2026-07-28"


def entry(check: str, status: str, message: str | None = None) -> dict[str, object]:
    found: dict[str, object] = {"id": check, "status": status}
    if message:
        found["errorMessage"] = message
    return found


def test_a_repeated_check_counts_once_at_its_worst_and_info_is_no_verdict() -> None:
    entries = [entry("a", "SUCCESS"), entry("a", "FAILURE"), entry("a", "SUCCESS"), entry("log", "INFO")]
    entries += [entry("b", "SKIPPED"), entry("b", "WARNING")]
    assert collapse(entries) == {"a": "FAILURE", "b": "SKIPPED"}


def test_the_hub_has_a_gap_where_it_scores_lower_on_a_check() -> None:
    direct = {"s": {"ok": "SUCCESS", "warned": "SUCCESS", "bailed": "SUCCESS", "both": "WARNING", "better": "FAILURE"}}
    hub = {"s": {"ok": "SUCCESS", "warned": "WARNING", "both": "WARNING", "better": "SUCCESS", "general": "FAILURE"}}
    assert gaps(V1, direct, hub) == [
        Gap(V1, "s", "bailed", "SUCCESS", "ABSENT"),
        Gap(V1, "s", "general", "ABSENT", "FAILURE"),
        Gap(V1, "s", "warned", "SUCCESS", "WARNING"),
    ]


def test_a_scenario_the_hub_run_never_reported_is_a_gap_on_every_check() -> None:
    direct = {"s": {"one": "SUCCESS", "two": "SUCCESS"}, "t": {"x": "SUCCESS"}}
    assert [gap.key for gap in gaps(V1, direct, {"t": {"x": "SUCCESS"}})] == [(V1, "s", "one"), (V1, "s", "two")]


def test_the_test_server_must_pass_every_check_directly() -> None:
    direct = {"s": {"ok": "SUCCESS", "bad": "FAILURE", "meh": "WARNING"}}
    assert direct_failures(V1, direct) == [f"{V1} s:bad is FAILURE directly", f"{V1} s:meh is WARNING directly"]
    assert direct_failures(V1, {"s": {"ok": "SUCCESS"}}) == []


def test_new_gaps_fail_and_listed_gaps_that_pass_now_must_leave_the_list() -> None:
    found = [Gap(V1, "s", "still", "SUCCESS", "FAILURE"), Gap(V1, "s", "fresh", "SUCCESS", "FAILURE")]
    known = {(V1, "s", "still"), (V1, "s", "fixed"), (V2, "t", "other-version")}
    verdict = judge(found, known, {V1})
    assert [gap.check for gap in verdict.new] == ["fresh"]
    assert verdict.closed == [(V1, "s", "fixed")]  # V2 did not run: its entries are not judged
    assert not verdict.ok
    assert judge(found[:1], {(V1, "s", "still")}, {V1}).ok


versions = st.sampled_from([V1, V2, "2025-06-18"])
names = st.text(st.characters(categories=["L", "N"], include_characters="-_:/."), min_size=1, max_size=20)


@given(st.sets(st.tuples(versions, names, names), max_size=30))
def test_the_known_gap_file_reads_back_what_was_written(known: set[tuple[str, str, str]]) -> None:
    # A directory of its own per example: Hypothesis runs many examples in one test call.
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "gaps.yaml"
        path.write_text("# header\n" + dump_known_gaps(known))
        assert load_known_gaps(path) == known


def test_an_unquoted_version_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "gaps.yaml"
    path.write_text("2025-11-25:\n  s: [c]\n")  # YAML reads this key as a date
    with pytest.raises(ValueError, match="2025-11-25.*quoted"):
        load_known_gaps(path)
    path.write_text("'2025-11-25':\n  s: c\n")
    with pytest.raises(ValueError, match="list of check ids"):
        load_known_gaps(path)
    assert load_known_gaps(tmp_path / "absent.yaml") == set()


def test_results_are_read_from_the_suites_output_directories(tmp_path: Path) -> None:
    for scenario, checks in {
        "server-stateless": [entry("x", "SUCCESS"), entry("y", "FAILURE", "Expected -32021")],
        "input-required-result-multi-round": [entry("r1", "WARNING", "late")],
    }.items():
        folder = tmp_path / f"server-{scenario}-2026-12-02T11-42-16-054Z"
        folder.mkdir()
        (folder / "checks.json").write_text(json.dumps(checks))
    (tmp_path / "server-unfinished-2026-12-02T11-42-16-054Z").mkdir()  # no checks.json: the suite died
    (tmp_path / "notes.txt").write_text("not a result")
    assert read_results(tmp_path) == {
        "input-required-result-multi-round": {"r1": "WARNING"},
        "server-stateless": {"x": "SUCCESS", "y": "FAILURE"},
    }
    assert read_messages(tmp_path) == {
        ("input-required-result-multi-round", "r1"): "late",
        ("server-stateless", "y"): "Expected -32021",
    }


def test_the_table_counts_the_direct_runs_checks_and_names_each_scenarios_state() -> None:
    direct = {"a": {"c1": "SUCCESS", "c2": "SUCCESS"}, "b": {"c": "SUCCESS"}, "d": {"c": "SUCCESS"}}
    hub = {"a": {"c1": "SUCCESS", "c2": "FAILURE", "extra": "FAILURE"}, "b": {"c": "FAILURE"}, "d": {"c": "SUCCESS"}}
    run = VersionRun(V1, direct, hub, gaps(V1, direct, hub), {})
    known = {(V1, "a", "c2"), (V1, "a", "extra"), (V1, "d", "c")}
    assert run.passed(run.direct) == (4, 4)
    assert run.passed(run.hub) == (2, 4)
    assert scenario_state(run, "a", known) == "known gap (2)"
    assert scenario_state(run, "b", known) == "NEW GAP: c"
    assert scenario_state(run, "d", known).startswith("FIXED")
    lines = table(run, known).splitlines()
    assert lines[0] == f"spec version {V1}"
    assert lines[-1].split() == ["checks", "passing", "4/4", "2/4"]
