"""run_code: programs that call tools, combine their results, and get errors they can handle."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp_types as types
import pytest

from mcp_hub.codemode import OUTCOME_META, RUN_ID_META, TOOL_CALLS_META, CodeMode, ToolSpec
from tests.mcp_hub.codemode.conftest import (
    FakeCaller,
    result_json,
    settings,
    spec,
    structured_result,
    text_of,
    text_result,
)
from toolpolicy.errors import ToolNotAllowed
from toolpolicy.telemetry.metrics import Metrics

pytestmark = pytest.mark.anyio

PAGES = {"p1": {"id": "p1", "words": 120}, "p2": {"id": "p2", "words": 30}, "p3": {"id": "p3", "words": 75}}
SPECS = [
    spec("docs", "search", {"query": {"type": "string"}, "limit": {"type": "integer"}}, required=("query",)),
    spec("docs", "get_page", {"id": {"type": "string"}, "class": {"type": "string"}}, required=("id",)),
]


async def search(arguments: dict[str, Any]) -> types.CallToolResult:
    return structured_result({"hits": [{"id": key} for key in PAGES][: arguments.get("limit", 10)]})


async def get_page(arguments: dict[str, Any]) -> types.CallToolResult:
    if arguments["id"] not in PAGES:
        return text_result(f"no page {arguments['id']!r}", error=True)
    return text_result(PAGES[arguments["id"]])


@pytest.fixture
def caller() -> FakeCaller:
    return FakeCaller({("docs", "search"): search, ("docs", "get_page"): get_page})


async def run(engine: CodeMode, code: str, caller: FakeCaller, specs: list[ToolSpec] = SPECS) -> types.CallToolResult:
    return await engine.call("run_code", {"code": code}, specs, caller, "run-1")


async def test_a_program_combines_the_results_of_two_tools(engine: CodeMode, caller: FakeCaller) -> None:
    code = """
found = await docs.search(query="guide")
pages = []
for hit in found["hits"]:
    pages.append(await docs.get_page(id=hit["id"]))
long = [page["id"] for page in pages if page["words"] > 50]
{"long": long, "words": sum(page["words"] for page in pages)}
"""
    result = await run(engine, code, caller)
    assert result_json(result) == {"long": ["p1", "p3"], "words": 225}
    assert caller.calls == [
        ("docs", "search", {"query": "guide"}),
        ("docs", "get_page", {"id": "p1"}),
        ("docs", "get_page", {"id": "p2"}),
        ("docs", "get_page", {"id": "p3"}),
    ]
    assert result.meta == {RUN_ID_META: "run-1", TOOL_CALLS_META: 4, OUTCOME_META: "ok"}


async def test_gathered_calls_run_concurrently(engine: CodeMode) -> None:
    started, all_started = 0, anyio.Event()

    async def slow(arguments: dict[str, Any]) -> types.CallToolResult:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        with anyio.fail_after(3):  # only returns if all three calls are in flight at once
            await all_started.wait()
        return text_result({"n": arguments["n"]})

    caller = FakeCaller({("docs", "slow"): slow})
    code = (
        "import asyncio\nrows = await asyncio.gather(*[docs.slow(n=n) for n in range(3)])\n[row['n'] for row in rows]"
    )
    result = await run(engine, code, caller, [spec("docs", "slow", {"n": {"type": "integer"}})])
    assert result_json(result) == [0, 1, 2]


async def test_tools_are_reachable_by_import_alias_and_from_import(engine: CodeMode, caller: FakeCaller) -> None:
    code = (
        "import docs as d\nfrom docs import get_page as page\n"
        "[(await d.search(query='x', limit=1))['hits'], await page('p2')]"
    )
    result = await run(engine, code, caller)
    assert result_json(result) == [[{"id": "p1"}], {"id": "p2", "words": 30}]


async def test_python_names_translate_back_and_none_leaves_an_optional_argument_out(
    engine: CodeMode, caller: FakeCaller
) -> None:
    await run(engine, "await docs.get_page('p1', class_='wide')\nawait docs.get_page(id='p2', class_=None)", caller)
    assert [arguments for _, _, arguments in caller.calls] == [{"id": "p1", "class": "wide"}, {"id": "p2"}]


async def test_the_result_variable_and_printed_output_are_returned(engine: CodeMode, caller: FakeCaller) -> None:
    result = await run(engine, "print('looking')\nresult = {'ok': (1, 2), 'tags': {'b', 'a'}}\nx = 1", caller)
    assert text_of(result) == 'Result:\n{"ok": [1, 2], "tags": ["a", "b"]}\n\nPrinted:\nlooking'


async def test_a_program_without_a_value_is_told_how_to_return_one(engine: CodeMode, caller: FakeCaller) -> None:
    result = await run(engine, "x = 1", caller)
    assert not result.is_error
    assert text_of(result) == (
        "Result:\nnull\n\n(The program ended without a value: end with an expression, or set `result`.)"
    )


async def test_a_tool_error_is_an_exception_the_program_can_catch(engine: CodeMode, caller: FakeCaller) -> None:
    code = "try:\n    await docs.get_page(id='nope')\nexcept RuntimeError as exc:\n    caught = str(exc)\ncaught"
    assert result_json(await run(engine, code, caller)) == "docs.get_page() failed: no page 'nope'"


async def test_an_uncaught_tool_error_fails_the_run_naming_the_line(engine: CodeMode, caller: FakeCaller) -> None:
    result = await run(engine, "x = 1\nawait docs.get_page(id='nope')", caller)
    assert result.is_error
    assert text_of(result).startswith(
        "The program raised an exception: RuntimeError: docs.get_page() failed: no page 'nope' (line 2)"
    )


async def test_a_refusal_by_the_gateway_is_a_permission_error(engine: CodeMode) -> None:
    async def revoked(arguments: dict[str, Any]) -> types.CallToolResult:
        raise ToolNotAllowed("key 'bot' may not call tool 'search' of 'docs'")

    caller = FakeCaller({("docs", "search"): revoked})
    code = "try:\n    await docs.search(query='x')\nexcept PermissionError as exc:\n    result = str(exc)"
    assert result_json(await run(engine, code, caller)) == (
        "docs.search() was refused: key 'bot' may not call tool 'search' of 'docs'"
    )


async def test_a_failing_caller_does_not_take_the_engine_down(
    engine: CodeMode, caller: FakeCaller, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(arguments: dict[str, Any]) -> types.CallToolResult:
        raise KeyError("bug")

    broken_caller = FakeCaller({("docs", "search"): broken})
    with caplog.at_level(logging.ERROR, logger="mcp_hub.codemode.bindings"):
        result = await run(engine, "await docs.search(query='x')", broken_caller)
    assert "docs.search() failed: the gateway could not make the call" in text_of(result)
    assert "Code Mode call of docs.search failed" in caplog.text
    assert result_json(await run(engine, "await docs.search(query='x')", caller)) == {
        "hits": [{"id": "p1"}, {"id": "p2"}, {"id": "p3"}]
    }


NOT_JSON = "which JSON cannot carry; pass str, numbers, lists or dicts"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("docs.get_page()", "docs.get_page() missing 1 required argument(s): 'id'"),
        ("docs.get_page('a', 'b', 'c')", "docs.get_page() takes 2 positional argument(s) but 3 were given"),
        (
            "docs.get_page(id='a', colour=1)",
            "docs.get_page() got an unexpected keyword argument 'colour' (its parameters: id, class_)",
        ),
        ("docs.get_page('a', id='b')", "docs.get_page() got multiple values for argument 'id'"),
        ("docs.get_page(id=b'raw')", f"argument 'id' of docs.get_page() is a bytes, {NOT_JSON}"),
        (
            "docs.get_page(id={1: 'x'})",
            "argument 'id' of docs.get_page() has a key 1 of type int; JSON object keys are str",
        ),
    ],
)
async def test_bad_arguments_raise_type_error_before_any_call(
    engine: CodeMode, caller: FakeCaller, call: str, message: str
) -> None:
    code = f"try:\n    await {call}\nexcept TypeError as exc:\n    result = str(exc)"
    assert result_json(await run(engine, code, caller)) == message
    assert caller.calls == []


async def test_tool_results_arrive_as_python_values(engine: CodeMode) -> None:
    async def mixed(arguments: dict[str, Any]) -> types.CallToolResult:
        kind = arguments["kind"]
        if kind == "structured":
            return structured_result({"a": 1})
        if kind == "text":
            return text_result("plain words")
        if kind == "broken-json":
            return text_result("{not json")
        blocks = [types.TextContent(type="text", text="[1, 2]"), types.TextContent(type="text", text="two")]
        return types.CallToolResult(content=blocks)

    caller = FakeCaller({("x", "mixed"): mixed})
    kinds = ["structured", "text", "broken-json", "many"]
    code = f"[await x.mixed(kind=k) for k in {kinds!r}]"
    result = await run(engine, code, caller, [spec("x", "mixed", {"kind": {"type": "string"}})])
    assert result_json(result) == [{"a": 1}, "plain words", "{not json", [[1, 2], "two"]]


async def test_a_syntax_error_names_its_line(engine: CodeMode, caller: FakeCaller) -> None:
    result = await run(engine, "x = 1\nif x\n    y = 2", caller)
    assert result.is_error
    assert text_of(result).startswith("The program raised an exception: SyntaxError:")
    assert "(line 2)" in text_of(result)


async def test_values_json_cannot_carry_are_shown_as_text(engine: CodeMode, caller: FakeCaller) -> None:
    code = (
        "import datetime\n"
        "result = [docs.search, print, float('nan'), datetime.date(2026, 1, 2), b'raw', Exception('x')]"
    )
    assert result_json(await run(engine, code, caller)) == [
        "docs.search", "<built-in function print>", "nan", "2026-01-02", "raw", "Exception('x')"
    ]  # fmt: skip


async def test_result_and_printed_output_are_cut_with_a_note() -> None:
    engine = CodeMode(settings(max_output_bytes=256))
    try:
        result = await engine.call(
            "run_code", {"code": "for i in range(100):\n    print('line', i)\n'é' * 1000"}, [], FakeCaller({}), "r"
        )
    finally:
        await engine.stop()
    text = text_of(result)
    assert not result.is_error
    assert "[result cut at 256 of 2002 bytes: return less, or aggregate in the program]" in text
    assert "[printed output cut at 256 of 790 bytes]" in text
    value = text.split("\n")[1]
    assert len(value.encode()) <= 256 and value.startswith('"éé')
    assert "line 0\nline 1" in text and "line 99" not in text


async def test_runs_are_counted_by_outcome() -> None:
    metrics = Metrics()
    engine = CodeMode(settings(), metrics=metrics)
    try:
        for code in ("1", "2", "raise ValueError('x')", ""):
            await engine.call("run_code", {"code": code}, [], FakeCaller({}), "r")
    finally:
        await engine.stop()
    counts = {label: metrics.code_mode_runs.labels(label)._value.get() for label in ("ok", "error", "invalid")}
    assert counts == {"ok": 2, "error": 1, "invalid": 1}


async def test_a_lazy_engine_loads_its_sandbox_at_the_first_run_and_refuses_runs_once_stopped() -> None:
    engine = CodeMode(settings(), lazy=True)
    await engine.start()  # nothing to warm: the hub builds it so when no server or configured key uses Code Mode
    try:
        assert result_json(await engine.call("run_code", {"code": "6 * 7"}, [], FakeCaller({}), "r")) == 42
    finally:
        await engine.stop()
    stopped = CodeMode(settings(), lazy=True)
    await stopped.start()
    await stopped.stop()
    refused = await stopped.call("run_code", {"code": "1"}, [], FakeCaller({}), "r")
    assert refused.is_error and "shutting down" in text_of(refused)
