"""A profile's samples go to their owners (Isthmus, each library, the loop, the kernel), weighed by each thread's
own CPU."""

from __future__ import annotations

import pytest

from bench.attribution import (
    CLIENT,
    KERNEL,
    KERNEL_OTHER,
    LOOP,
    NO_CALLER,
    OWN,
    SERVER,
    UNSAMPLED,
    CpuTime,
    ProcessCpu,
    attribute,
)

SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/py/lib/python3.11"
ROOTS = (SITE, "/venv/bin", "/repo", STDLIB)
MAIN = f"<module> (/venv/bin/isthmus:8);main (/repo/isthmus/cli.py:300);Runner.run ({STDLIB}/asyncio/runners.py:118)"
THREAD = f"Thread._bootstrap ({STDLIB}/threading.py:1002);Thread.run ({STDLIB}/threading.py:982)"
JSON = f"dumps ({STDLIB}/json/__init__.py:231);JSONEncoder.iterencode ({STDLIB}/json/encoder.py:258)"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


def _raw(*stacks: tuple[str, int]) -> str:
    return "\n".join(f"{stack} {count}" for stack, count in stacks)


PROFILE = _raw(
    (MAIN, 10),  # the C loop: uvloop's time is Runner.run's self time
    (f"{MAIN};Endpoints._handle (/repo/llm_proxy/endpoints.py:112);{JSON}", 15),  # json.dumps for llm_proxy
    (f"{MAIN};Settings.load (/repo/toolpolicy/settings.py:30);_Environ.__getitem__ (<frozen os>)", 5),
    (f"{MAIN};ServerSession._handle (/repo/mcp_hub/server.py:40);call ({SITE}/mcp/server/lowlevel.py:9);{JSON}", 5),
    (f"{MAIN};RequestResponseCycle.send ({SITE}/uvicorn/protocols/http/httptools_impl.py:500)", 15),
    (f"{MAIN};ClientSession._request ({SITE}/aiohttp/client.py:700);__init__ (<string>:2)", 10),
    (f"{MAIN};Tracer.start_span ({SITE}/opentelemetry/sdk/trace/__init__.py:1100)", 10),
    (f"{MAIN};TypeAdapter.validate_python ({SITE}/pydantic/type_adapter.py:400)", 5),
    (f"{MAIN};Encoding.encode ({SITE}/tiktoken/core.py:120)", 5),
    (f"{THREAD};_connection_worker_thread ({SITE}/aiosqlite/core.py:63)", 15),
    (f"{THREAD};_worker ({STDLIB}/concurrent/futures/thread.py:83)", 5),
)


def test_each_sample_belongs_to_its_innermost_owner_and_stdlib_time_to_its_caller() -> None:
    found = attribute(PROFILE, roots=ROOTS)
    assert found.samples == 100
    assert found.cpu_ms is None
    assert found.shares == pytest.approx(
        {
            OWN: 0.20,
            SERVER: 0.15,
            "aiosqlite/sqlite": 0.15,
            CLIENT: 0.10,
            LOOP: 0.10,
            "OpenTelemetry SDK": 0.10,
            "mcp SDK": 0.05,
            "pydantic": 0.05,
            NO_CALLER: 0.05,
            "tiktoken": 0.05,
        }
    )
    assert list(found.shares)[:3] == [OWN, SERVER, "aiosqlite/sqlite"]  # largest first, ties by name


PROBE = f"{THREAD};LoopLag._run (/repo/toolpolicy/telemetry/loop_lag.py:66)"
WRITER = f"{THREAD};_connection_worker_thread ({SITE}/aiosqlite/core.py:63)"
THREADS = _raw(
    (f"thread (100): MainThread;{MAIN};Endpoints._handle (/repo/llm_proxy/endpoints.py:112)", 40),
    (f"thread (100): MainThread;{MAIN};ClientSession._request ({SITE}/aiohttp/client.py:700)", 40),
    (f"thread (101): isthmus-loop-lag;{PROBE}", 60),  # asleep in time.sleep, yet sampled as busy
    (f"thread (102): Thread-2 (_connection_worker_thread);{WRITER}", 10),
)


def test_each_threads_samples_are_weighed_by_that_threads_own_cpu() -> None:
    # the probe has more samples than any other thread but used no CPU; the writer used 0.2 s on 10 samples
    cpu = ProcessCpu(
        {100: CpuTime(0.8, 0.0), 101: CpuTime(0.0, 0.0), 102: CpuTime(0.2, 0.0)}, process=CpuTime(1.0, 0.0)
    )
    found = attribute(THREADS, cpu, cpu_ms=1.0, roots=ROOTS)
    assert found.samples == 150
    assert found.shares == pytest.approx({OWN: 0.4, CLIENT: 0.4, "aiosqlite/sqlite": 0.2})
    # weighing the other threads together by their summed CPU gave the probe 60 / 70 of the writer's 0.2 s
    assert found.ms([OWN]) == pytest.approx(0.4)


def test_a_thread_that_ended_in_the_window_keeps_the_cpu_proc_no_longer_lists_for_it() -> None:
    # /proc no longer lists the writer: the process's 0.25 s beyond its live threads' was the writer's
    cpu = ProcessCpu({100: CpuTime(0.75, 0.0), 101: CpuTime(0.0, 0.0)}, process=CpuTime(1.0, 0.0), ended=True)
    found = attribute(THREADS, cpu, roots=ROOTS)
    assert found.shares == pytest.approx({OWN: 0.375, CLIENT: 0.375, "aiosqlite/sqlite": 0.25})


def test_with_no_thread_gone_the_processs_cpu_beyond_its_threads_is_only_rounding_and_no_row() -> None:
    cpu = ProcessCpu({100: CpuTime(0.8, 0.0), 101: CpuTime(0.0, 0.0), 102: CpuTime(0.19, 0.0)}, CpuTime(1.0, 0.0))
    found = attribute(THREADS, cpu, roots=ROOTS)
    assert set(found.shares) == {OWN, CLIENT, "aiosqlite/sqlite"}


def test_cpu_on_threads_py_spy_never_sampled_is_shown_apart() -> None:
    cpu = ProcessCpu({100: CpuTime(0.3, 0.0), 103: CpuTime(0.05, 0.05)}, process=CpuTime(0.35, 0.05))
    found = attribute(_raw((f"thread (100): MainThread;{MAIN}", 10)), cpu, cpu_ms=4.0, roots=ROOTS)
    assert found.shares == pytest.approx({LOOP: 0.75, UNSAMPLED: 0.25})
    assert found.ms([UNSAMPLED]) == pytest.approx(1.0)


HEAD = f"{MAIN};CheckedHeadCycle._head (/repo/isthmus/response_head.py:80)"
WRITE = f"UVStream__try_write (/project/uvloop/loop.c:106818);write ({LIBC})"
NATIVE = _raw(
    (f"thread (100): MainThread;{HEAD};{WRITE}", 30),  # the socket write Isthmus's response writer makes
    (f"thread (100): MainThread;{HEAD}", 10),
    (f"thread (100): MainThread;{MAIN};Loop__run (/project/uvloop/loop.c:1);epoll_pwait ({LIBC})", 30),
    (f"thread (100): MainThread;{MAIN};Loop__run (/project/uvloop/loop.c:1)", 10),  # uvloop's C: the loop's
    (f"thread (100): MainThread;{MAIN};StreamWriter._writelines ({SITE}/aiohttp/http_writer.py:90);{WRITE}", 10),
    (f"thread (100): MainThread;{MAIN};Proto.get ({SITE}/aiohttp/p.py:1);pthread_cond_wait ({LIBC});0x7f ({LIBC})", 10),
)


def test_a_system_call_is_the_kernels_whoever_made_it_and_system_time_is_shared_among_system_calls() -> None:
    # 80 of 90 samples are in a system call (most waiting for a core), but the thread spent 0.1 of its 1.0 s there
    cpu = ProcessCpu({100: CpuTime(0.9, 0.1)}, process=CpuTime(0.9, 0.1))
    found = attribute(NATIVE, cpu, cpu_ms=1.0, roots=ROOTS)
    assert found.shares == pytest.approx({OWN: 0.45, LOOP: 0.45, KERNEL: 0.1 * 70 / 80, KERNEL_OTHER: 0.1 * 10 / 80})
    # by samples alone the kernel had 70 of 100
    assert attribute(NATIVE, roots=ROOTS).shares[KERNEL] == pytest.approx(0.7)


def test_glibcs_internal_names_of_a_socket_call_are_the_kernels_too() -> None:
    raw = _raw(
        (f"thread (100): MainThread;{HEAD};__GI___libc_write ({LIBC})", 1),
        (f"thread (100): MainThread;{HEAD};__send (/lib/x86_64-linux-gnu/libpthread-2.31.so)", 1),
        (f"thread (100): MainThread;{HEAD};writev ({LIBC});0x7f12 ({LIBC})", 1),
        (f"thread (100): MainThread;{HEAD};write (/project/uvloop/loop.c:10)", 1),  # not the C library's
    )
    assert attribute(raw, roots=ROOTS).shares == pytest.approx({KERNEL: 0.75, OWN: 0.25})


def test_the_floors_own_code_is_told_apart_from_isthmus() -> None:
    floor = "<module> (/repo/bench/passthrough.py:104);PassThrough.__call__ (/repo/bench/passthrough.py:40)"
    found = attribute(
        _raw((floor, 3), (f"{floor};ClientSession._request ({SITE}/aiohttp/client.py:7)", 1)), roots=ROOTS
    )
    assert found.shares == pytest.approx({"the floor's own code": 0.75, CLIENT: 0.25})
    assert found.own == 0


def test_an_empty_profile_attributes_nothing() -> None:
    found = attribute("", ProcessCpu({}, CpuTime(0.0, 0.0)), roots=ROOTS)
    assert found.shares == {}
    assert found.ms([OWN]) is None
