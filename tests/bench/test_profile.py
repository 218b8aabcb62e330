"""py-spy's collapsed stacks are summarised by function and by package, start-up frames left out."""

from __future__ import annotations

import pytest

from bench.attribution import CpuTime, ProcessCpu
from bench.profile import CLOCK_TICKS, Ticks, Times, cpu_between, cpu_text, summarise

ROOT = "<module> (isthmus/cli.py:300);Runner.run (asyncio/runners.py:118)"
STACKS = "\n".join(
    [
        f"{ROOT};Endpoints._handle (llm_proxy/endpoints.py:112);read_json (llm_proxy/endpoints.py:57) 30",
        f"{ROOT};Endpoints._handle (llm_proxy/endpoints.py:120);Governor.admit (toolpolicy/governor.py:112) 50",
        "Thread._bootstrap (threading.py:1002);_connection_worker_thread (aiosqlite/core.py:63) 20",
    ]
)


def test_self_time_goes_to_the_innermost_frame_and_inclusive_time_to_every_package_on_the_stack() -> None:
    summary = summarise(STACKS)
    lines = summary.splitlines()
    assert lines[0] == "100 samples. Self time, top 12 functions:"
    assert lines[2] == "- 50.0% `Governor.admit (toolpolicy/governor.py)`"
    assert "- 30.0% `read_json (llm_proxy/endpoints.py)`" in lines
    assert "Self time by package: toolpolicy 50%, llm_proxy 30%, aiosqlite 20%" in summary
    inclusive = next(line for line in lines if line.startswith("Inclusive"))
    assert inclusive.endswith("llm_proxy 80%, toolpolicy 50%, aiosqlite 20%")
    assert "isthmus" not in inclusive and "asyncio" not in inclusive


def test_no_samples_says_so() -> None:
    assert summarise("") == "py-spy recorded no samples."


def test_full_file_names_are_summarised_by_package_and_namespace_packages_keep_their_name() -> None:
    site = "/venv/lib/python3.11/site-packages"
    root = "<module> (/venv/bin/isthmus:8);Runner.run (/py/lib/python3.11/asyncio/runners.py:118)"
    raw = f"{root};Tracer.start_span ({site}/opentelemetry/sdk/trace/__init__.py:1100) 3\n{root} 1"
    summary = summarise(raw, roots=(site, "/venv/bin", "/py/lib/python3.11"))
    assert "- 75.0% `Tracer.start_span (opentelemetry/sdk/trace/__init__.py)`" in summary
    assert "Self time by package: opentelemetry 75%, asyncio 25%" in summary


LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
THREADED = "\n".join(
    [
        f"thread (7): MainThread;{ROOT};CheckedHeadCycle._head (isthmus/response_head.py:80);write ({LIBC}) 60",
        f"thread (7): MainThread;{ROOT};Endpoints._handle (llm_proxy/endpoints.py:112) 20",
        "thread (8): isthmus-loop-lag;Thread._bootstrap (threading.py:1002);LoopLag._run "
        f"(toolpolicy/telemetry/loop_lag.py:66);clock_nanosleep ({LIBC}) 50",
    ]
)


def test_with_the_cpu_known_self_time_is_weighed_by_each_threads_cpu_and_a_socket_write_is_a_system_call() -> None:
    cpu = ProcessCpu({7: CpuTime(0.6, 0.2), 8: CpuTime(0.0, 0.0)}, process=CpuTime(0.6, 0.2))
    summary = summarise(THREADED, cpu=cpu)
    lines = summary.splitlines()
    assert lines[0] == "130 samples. Self time, top 12 functions:"
    assert lines[2:4] == ["- 75.0% `Endpoints._handle (llm_proxy/endpoints.py)`", "- 25.0% `write (system call)`"]
    assert "LoopLag._run" not in lines[4]  # sampled 50 times, but it used no CPU
    assert "Self time by package: llm_proxy 75%, kernel 25%" in summary
    assert "isthmus 25%" in next(line for line in lines if line.startswith("Inclusive"))


def test_the_cpu_between_two_readings_counts_a_new_thread_whole_and_splits_the_exact_run_time_by_the_ticks() -> None:
    before = Times(Ticks(100, 10), {7: Ticks(80, 8, 900_000_000), 9: Ticks(20, 2, 220_000_000)})
    after = Times(Ticks(300, 40), {7: Ticks(200, 28, 2_300_000_000), 8: Ticks(50, 5)})  # 9 ended, 8 started
    cpu = cpu_between(before, after)
    ticks = 1 / CLOCK_TICKS
    # thread 7 ran 1.4 s by the scheduler's count, 120 + 20 ticks by /proc's: the ticks only split the 1.4 s
    assert cpu.threads[7] == CpuTime(pytest.approx(1.2), pytest.approx(0.2))
    assert cpu.threads[8] == CpuTime(50 * ticks, 5 * ticks)  # without the scheduler's figure, the ticks
    assert cpu.process == CpuTime(200 * ticks, 30 * ticks)
    assert cpu.ended
    assert not cpu_between(after, after).ended


def test_cpu_text_sets_each_threads_cpu_beside_its_samples() -> None:
    cpu = ProcessCpu({7: CpuTime(0.6, 0.2), 8: CpuTime(0.0, 0.001), 9: CpuTime(0.01, 0.0)}, CpuTime(0.61, 0.201))
    text = cpu_text(7, cpu, THREADED, elapsed=2.0)
    assert text.startswith(
        "CPU used while profiled (from /proc, not sampled): the process 40.5% of a core (user 30.5%, system 10.1%). "
        "By thread, beside py-spy's samples of it: MainThread 40.0% of a core (user 30.0%, system 10.0%), 80 samples; "
        "isthmus-loop-lag 0.1% of a core (user 0.0%, system 0.1%), 50 samples; 1 thread py-spy never sampled, 0.5% "
        "of a core together. py-spy found the main thread running or waiting for a core 80% of the time."
    )
