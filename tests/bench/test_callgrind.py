"""Reading callgrind's output, and driving a process under callgrind from outside (when valgrind is installed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.callgrind import (
    CallgrindError,
    Controlled,
    Dump,
    count_paused_run,
    missing_tools,
    parse_annotate,
    parse_totals,
    read_dump,
    short_name,
    valgrind_argv,
)

needs_valgrind = pytest.mark.skipif(
    bool(missing_tools()), reason=f"valgrind is not installed ({', '.join(missing_tools())} missing)"
)
PYTHON = os.path.realpath(sys.executable)
"""The interpreter itself: `sys.executable` may be a shell shim (pyenv), and valgrind would count the shell."""


def test_the_totals_line_gives_each_event_its_count() -> None:
    text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir Dr\nsummary: 90 4\nfn=(1) main\n5 100 6\ntotals: 100 6\n"
    assert parse_totals(text) == {"Ir": 100, "Dr": 6}


def test_the_summary_line_stands_in_when_there_are_no_totals() -> None:
    assert parse_totals("events: Ir\nsummary: 1234\n") == {"Ir": 1234}


def test_events_left_off_a_cost_line_count_zero() -> None:
    assert parse_totals("events: Ir Dr Dw\ntotals: 7\n") == {"Ir": 7, "Dr": 0, "Dw": 0}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("summary: 12\ntotals: 12\n", "no events: line"),
        ("events: Ir\nfn=(1) main\n", "neither a totals: nor a summary: line"),
        ("events: Ir\ntotals: many\n", "not numbers"),
    ],
)
def test_output_that_is_not_a_complete_dump_is_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(CallgrindError, match=problem):
        parse_totals(text, "dump.1")


def test_a_dump_without_instructions_says_which_events_it_has(tmp_path: Path) -> None:
    path = tmp_path / "callgrind.out.1"
    path.write_text("events: Dr\ntotals: 5\n")
    with pytest.raises(CallgrindError, match=r"no Ir among the events \['Dr'\]"):
        _ = read_dump(path).instructions


def test_the_function_table_of_callgrind_annotate_is_read_in_order() -> None:
    text = """--------------------------------------------------------------------------------
Thresholds:       100
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
4,501,126 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                  file:function
--------------------------------------------------------------------------------
3,464,530 (76.97%)  Python/ceval.c:_PyEval_EvalFrameDefault [/usr/lib/libpython3.11.so.1.0]
    1,009 ( 0.02%)  ???:0x0000000004936718 [???]
"""
    assert parse_annotate(text) == [
        (3_464_530, "Python/ceval.c:_PyEval_EvalFrameDefault [/usr/lib/libpython3.11.so.1.0]"),
        (1_009, "???:0x0000000004936718 [???]"),
    ]


def test_a_function_is_named_without_the_directories_of_its_file_and_object() -> None:
    long = "/tmp/python-build.1/Python-3.11.7/Objects/dictobject.c:_Py_dict_lookup [/root/lib/libpython3.11.so.1.0]"
    assert short_name(long) == "dictobject.c:_Py_dict_lookup [libpython3.11.so.1.0]"
    assert short_name("???:0x0000000004936718 [???]") == "???:0x0000000004936718 [???]"
    assert short_name("./Include/object.h:find_name_in_mro") == "object.h:find_name_in_mro"


def run_counted(tmp_path: Path, code: str) -> tuple[int, int]:
    """Python running `code` under callgrind from the start: the Ir its dump holds and the count valgrind printed."""
    out = tmp_path / f"callgrind.out.{len(list(tmp_path.iterdir()))}"
    argv = valgrind_argv(out, [PYTHON, "-c", code])
    argv.remove("--instr-atstart=no")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    collected = re.search(r"Collected : (\d+)", done.stderr)
    assert collected is not None, done.stderr
    return read_dump(out).instructions, int(collected.group(1))


@needs_valgrind
def test_a_dump_of_a_real_run_holds_the_count_valgrind_reports_and_grows_with_the_work(tmp_path: Path) -> None:
    small, small_reported = run_counted(tmp_path, "sum(range(1000))")
    large, large_reported = run_counted(tmp_path, "sum(range(200000))")
    assert (small, large) == (small_reported, large_reported)
    assert large - small > 199_000 * 10  # at least a handful of instructions an addition


@needs_valgrind
def test_a_process_is_instrumented_zeroed_and_dumped_from_outside(tmp_path: Path) -> None:
    code = "import sys, time\nprint('up', flush=True)\ntime.sleep(120)"
    stem = tmp_path / "callgrind.out"
    with subprocess.Popen(
        valgrind_argv(stem, [PYTHON, "-c", code]), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == "up\n"
            controlled = Controlled(process.pid, stem)
            controlled.instrument(True)
            controlled.zero()
            first = controlled.dump()
            second = controlled.dump()
            assert [first.path.name, second.path.name] == ["callgrind.out.1", "callgrind.out.2"]
            # A sleeping interpreter runs almost nothing: far less than its start-up's tens of millions.
            assert 0 <= first.instructions < 5_000_000
        finally:
            process.kill()


class _Recorded(Controlled):
    """Controlled's commands recorded instead of sent to valgrind; its dump counts 42."""

    def __init__(self) -> None:
        super().__init__(0, Path("unused"))
        self.commands: list[str] = []

    def instrument(self, on: bool) -> None:
        self.commands.append(f"instrument {on}")

    def zero(self) -> None:
        self.commands.append("zero")

    def dump(self, timeout: float = 0) -> Dump:
        self.commands.append("dump")
        return Dump(Path("unused"), {"Ir": 42})


DRIVER = """
import sys
print("ready", flush=True)
sys.stdin.readline()
print("measured part", file=sys.stderr)
print("done", flush=True)
sys.stdin.readline()
"""


def test_a_paused_run_is_counted_from_the_go_ahead_to_done() -> None:
    counted = _Recorded()
    with subprocess.Popen([PYTHON, "-c", DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as driver:
        assert count_paused_run(driver, counted, timeout=60) == 42
    assert counted.commands == ["instrument True", "zero", "dump"]
    assert driver.returncode == 0


def test_a_driver_that_never_gets_ready_is_refused_and_ended() -> None:
    counted = _Recorded()
    argv = [PYTHON, "-c", "import sys; print('no', flush=True); sys.stdin.readline()"]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as driver:
        with pytest.raises(CallgrindError, match="did not get ready"):
            count_paused_run(driver, counted, timeout=60)
        assert driver.returncode is not None  # ended, not left waiting for its go-ahead
    assert counted.commands == []
