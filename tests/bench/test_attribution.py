"""A profile's samples go to their owners (Isthmus, each library, the loop), weighed by each thread's CPU."""

from __future__ import annotations

import pytest

from bench.attribution import CLIENT, LOOP, NO_CALLER, OWN, SERVER, UNSAMPLED, ThreadCpu, attribute

SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/py/lib/python3.11"
ROOTS = (SITE, "/venv/bin", "/repo", STDLIB)
MAIN = f"<module> (/venv/bin/isthmus:8);main (/repo/isthmus/cli.py:300);Runner.run ({STDLIB}/asyncio/runners.py:118)"
THREAD = f"Thread._bootstrap ({STDLIB}/threading.py:1002);Thread.run ({STDLIB}/threading.py:982)"
JSON = f"dumps ({STDLIB}/json/__init__.py:231);JSONEncoder.iterencode ({STDLIB}/json/encoder.py:258)"


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


def test_each_threads_samples_are_weighed_by_the_cpu_it_used_and_give_cpu_per_request() -> None:
    # 80 main-thread samples and 20 on other threads, but the other threads used 0.1 s of CPU against 0.9 s
    found = attribute(PROFILE, ThreadCpu(main=0.9, others=0.1), requests=1000, roots=ROOTS)
    assert found.cpu_ms == pytest.approx(1.0)
    assert found.own == pytest.approx(0.9 * 20 / 80)
    assert found.shares["aiosqlite/sqlite"] == pytest.approx(0.1 * 15 / 20)
    assert found.ms([OWN]) == pytest.approx(0.225)
    assert found.ms([SERVER, CLIENT, LOOP]) == pytest.approx(0.9 * 35 / 80)
    assert sum(found.shares.values()) == pytest.approx(1.0)


def test_cpu_on_threads_py_spy_never_sampled_is_shown_apart() -> None:
    found = attribute(_raw((MAIN, 10)), ThreadCpu(main=0.3, others=0.1), requests=100, roots=ROOTS)
    assert found.shares == pytest.approx({LOOP: 0.75, UNSAMPLED: 0.25})
    assert found.cpu_ms == pytest.approx(4.0)


def test_the_floors_own_code_is_told_apart_from_isthmus() -> None:
    floor = "<module> (/repo/bench/passthrough.py:104);PassThrough.__call__ (/repo/bench/passthrough.py:40)"
    found = attribute(
        _raw((floor, 3), (f"{floor};ClientSession._request ({SITE}/aiohttp/client.py:7)", 1)), roots=ROOTS
    )
    assert found.shares == pytest.approx({"the floor's own code": 0.75, CLIENT: 0.25})
    assert found.own == 0


def test_an_empty_profile_attributes_nothing() -> None:
    found = attribute("", ThreadCpu(0.0, 0.0), requests=10, roots=ROOTS)
    assert found.shares == {}
    assert found.ms([OWN]) is None
