"""Every limit of a run ends it with an error naming the limit (and the line when known); the engine keeps serving."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

from mcp_hub.codemode import OUTCOME_META, TOOL_CALLS_META, CodeMode
from tests.mcp_hub.codemode.conftest import FakeCaller, result_json, settings, spec, text_of, text_result

pytestmark = pytest.mark.anyio

SLOW = [spec("docs", "slow", {"n": {"type": "integer"}})]


@pytest.fixture
async def make_engine() -> AsyncIterator[Any]:
    engines: list[CodeMode] = []

    async def make(**overrides: Any) -> CodeMode:
        engine = CodeMode(settings(**overrides))
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


async def run(engine: CodeMode, code: str, caller: FakeCaller | None = None) -> types.CallToolResult:
    return await engine.call("run_code", {"code": code}, SLOW, caller or FakeCaller({}), "run-1")


async def still_serves(engine: CodeMode) -> None:
    assert result_json(await run(engine, "sum(range(10))")) == 45


async def test_an_endless_loop_hits_the_execution_time_limit(make_engine: Any) -> None:
    engine = await make_engine(execution_timeout=0.5)
    code = "n = 0\ntry:\n    while True:\n        n += 1\nexcept BaseException:\n    result = 'escaped the limit'"
    result = await run(engine, code)
    assert result.is_error
    assert text_of(result).startswith(
        "Execution time limit reached: the program executed for more than 0.5 s (waiting on tool calls does not "
        "count); look for a loop that never ends"
    )
    await still_serves(engine)


async def test_waiting_on_tool_calls_does_not_count_as_execution(make_engine: Any) -> None:
    engine = await make_engine(execution_timeout=0.5)

    async def slow(arguments: dict[str, Any]) -> types.CallToolResult:
        await anyio.sleep(0.4)
        return text_result({"n": arguments["n"]})

    caller = FakeCaller({("docs", "slow"): slow})
    code = "[(await docs.slow(n=i))['n'] for i in range(3)]"
    assert result_json(await run(engine, code, caller)) == [0, 1, 2]


async def test_a_hung_tool_call_hits_the_wall_time_limit_and_is_cancelled(make_engine: Any) -> None:
    engine = await make_engine(wall_timeout=1.0)
    cancelled = anyio.Event()

    async def hang(arguments: dict[str, Any]) -> types.CallToolResult:
        try:
            await anyio.sleep(30)
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    result = await run(engine, "x = 1\nawait docs.slow(n=1)", FakeCaller({("docs", "slow"): hang}))
    assert text_of(result) == (
        "Wall time limit reached: the run took longer than 1 s in all; it was waiting for docs.slow() "
        "(the last tool call was docs.slow() at line 2)"
    )
    assert cancelled.is_set()
    await still_serves(engine)


async def test_too_much_memory_hits_the_memory_limit(make_engine: Any) -> None:
    engine = await make_engine(max_memory_bytes=4 * 2**20)
    result = await run(engine, "small = 'a'\nbig = 'a' * (16 * 1024 * 1024)")
    assert text_of(result).startswith(
        "Memory limit reached: the program used more than 4 MiB of memory; keep only what the result needs (line 2)"
    )
    await still_serves(engine)


async def test_the_call_past_the_limit_ends_the_run_before_it_is_made(make_engine: Any) -> None:
    engine = await make_engine(max_tool_calls=3)

    async def fast(arguments: dict[str, Any]) -> types.CallToolResult:
        return text_result({"n": arguments["n"]})

    caller = FakeCaller({("docs", "slow"): fast})
    code = (
        "total = 0\nfor i in range(5):\n    try:\n        total += (await docs.slow(n=i))['n']\n"
        "    except BaseException:\n        pass\ntotal"
    )
    result = await run(engine, code, caller)
    assert text_of(result) == (
        "Tool call limit reached: the program tried to make more than 3 tool calls in one run; call 4 was "
        "docs.slow(). Batch the work (fewer, larger calls) or split it over several runs (line 4)"
    )
    assert [arguments["n"] for _, _, arguments in caller.calls] == [0, 1, 2]
    assert result.meta is not None and result.meta[TOOL_CALLS_META] == 3 and result.meta[OUTCOME_META] == "limit"
    await still_serves(engine)


async def test_a_gather_past_the_limit_cancels_the_calls_in_flight(make_engine: Any) -> None:
    engine = await make_engine(max_tool_calls=2)
    finished = 0

    async def slow(arguments: dict[str, Any]) -> types.CallToolResult:
        nonlocal finished
        await anyio.sleep(5)
        finished += 1
        return text_result({})

    caller = FakeCaller({("docs", "slow"): slow})
    with anyio.fail_after(3):
        result = await run(engine, "import asyncio\nawait asyncio.gather(*[docs.slow(n=i) for i in range(4)])", caller)
    assert text_of(result).startswith("Tool call limit reached:")
    assert len(caller.calls) == 2 and finished == 0


async def test_a_run_waits_for_a_busy_worker(make_engine: Any) -> None:
    engine = await make_engine(workers=1)
    finished: list[str] = []

    async def busy(arguments: dict[str, Any]) -> types.CallToolResult:
        await anyio.sleep(0.3)
        finished.append("tool call")
        return text_result({"done": True})

    caller = FakeCaller({("docs", "slow"): busy})

    async def first() -> None:
        assert result_json(await run(engine, "await docs.slow(n=1)", caller)) == {"done": True}
        finished.append("first")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first)
        while not caller.calls:
            await anyio.sleep(0.01)
        # The only worker is held by the first run until its tool call returns: this run queues behind it.
        assert result_json(await run(engine, "40 + 2")) == 42
        finished.append("second")
    assert finished.index("tool call") < finished.index("second")


def _monty_children() -> list[int]:
    """Worker processes this test process started (their parent is us and their binary is monty)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"monty" in command:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker")
async def test_a_crashed_worker_is_reported_and_replaced(make_engine: Any) -> None:
    others = set(_monty_children())  # workers of other pools in this process are left alone
    engine = await make_engine(workers=1)

    async def kill_worker(arguments: dict[str, Any]) -> types.CallToolResult:
        for pid in set(_monty_children()) - others:
            os.kill(pid, signal.SIGKILL)
        await anyio.sleep(0.2)
        return text_result({})

    result = await run(engine, "await docs.slow(n=1)\n'unreachable'", FakeCaller({("docs", "slow"): kill_worker}))
    assert result.is_error
    assert text_of(result).startswith("The sandbox worker crashed:")
    assert "a new worker replaces it" in text_of(result)
    await still_serves(engine)


async def test_a_program_larger_than_the_limit_is_refused(make_engine: Any) -> None:
    engine = await make_engine(max_code_bytes=256)
    result = await run(engine, "x = 1\n" * 100)
    assert result.is_error
    assert text_of(result) == "run_code 'code' is 600 bytes; the limit is 256"


async def test_a_stopped_engine_answers_that_it_is_unavailable(make_engine: Any) -> None:
    engine = await make_engine()
    await engine.stop()
    result = await run(engine, "1")
    assert result.is_error
    assert text_of(result) == "Code Mode is unavailable: the gateway is shutting down; try again shortly"
    await engine.start()
    await still_serves(engine)


async def test_a_sandbox_that_cannot_start_is_reported_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MONTY_BIN", "/nonexistent/monty")
    engine = CodeMode(settings())
    try:
        result = await run(engine, "1")
    finally:
        await engine.stop()
    assert result.is_error
    assert text_of(result).startswith("Code Mode is unavailable: the sandbox could not start:")
    assert "the Code Mode sandbox pool could not start" in caplog.text


async def test_too_many_host_round_trips_end_the_run(make_engine: Any) -> None:
    engine = await make_engine(max_tool_calls=10)
    code = "n = 0\nfor i in range(2000):\n    try:\n        undefined_name\n    except NameError:\n        n += 1\nn"
    result = await run(engine, code)
    assert text_of(result) == (
        "Host round-trip limit reached: the program asked the host for something (tool calls, imports, names it "
        "never defined) more than 1000 times in one run (line 4)"
    )
    await still_serves(engine)
