"""Every process the benchmark starts is stopped, with its children, a failed start shows the process's log, and a
store an earlier run left in a kept work directory is removed first."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from bench.procs import Processes, StartError, descendants, free_port, fresh_store

CHILD_AND_GRANDCHILD = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_leaving_the_block_stops_processes_and_their_children(tmp_path: Path) -> None:
    with Processes(tmp_path) as processes:
        proc = processes.start("sleeper", [sys.executable, "-c", CHILD_AND_GRANDCHILD])
        deadline = time.monotonic() + 10
        while not descendants(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        family = [proc.pid, *descendants(proc.pid)]
        assert len(family) == 2
        assert proc.peak_rss_mib() > 1
    assert not any(_alive(pid) for pid in family)


def test_an_error_inside_the_block_still_stops_everything(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), Processes(tmp_path) as processes:
        proc = processes.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
        raise RuntimeError("boom")
    assert proc.popen.poll() is not None


def test_a_process_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    with Processes(tmp_path) as processes:
        proc = processes.start(
            "broken", [sys.executable, "-c", "print('port in use'); raise SystemExit(3)"], port=free_port()
        )
        with pytest.raises(StartError, match=r"broken exited with code 3:\nport in use"):
            proc.wait_ready(10)


def test_children_can_import_the_bench_package_from_anywhere(tmp_path: Path) -> None:
    with Processes(tmp_path) as processes:
        proc = processes.start("import", [sys.executable, "-c", "import bench.report"], cwd=tmp_path)
        assert proc.popen.wait(30) == 0, proc.log.read_text()


def test_a_store_left_by_an_earlier_run_is_removed_with_its_journal_files_and_nothing_else(tmp_path: Path) -> None:
    directory = tmp_path / "contextforge"
    directory.mkdir()
    left = ["cf.db", "cf.db-wal", "cf.db-shm", "cf.db-journal"]
    kept = ["cf.db.bak", "cf.dbx", "other.db", "cf.yaml"]
    for name in left + kept:
        (directory / name).write_text("from the last run")

    assert fresh_store(directory / "cf.db") == directory / "cf.db"
    assert sorted(path.name for path in directory.iterdir()) == sorted(kept)


def test_a_store_in_a_directory_not_made_yet_gets_its_directory(tmp_path: Path) -> None:
    database = fresh_store(tmp_path / "isthmus-gov" / "isthmus.db")
    assert database.parent.is_dir() and not database.exists()
