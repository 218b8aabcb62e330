"""The meta-tools' definitions, their answers, and their handling of bad arguments."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from mcp_hub.codemode import META_TOOL_NAMES, CodeMode
from mcp_hub.codemode.toolbox import SANDBOX_MODULES, Toolbox
from tests.mcp_hub.codemode.conftest import FakeCaller, result_json, settings, spec, text_of

pytestmark = pytest.mark.anyio

SPECS = [
    spec("tickets", "search_tickets", {"query": {"type": "string", "description": "Words to match."}},
         required=("query",), description="Find support tickets by text. Slow on large accounts."),
    spec("tickets", "close_ticket", {"ticket_id": {"type": "string"}}, required=("ticket_id",),
         description="Close a ticket."),
    spec("crm", "get_account", {"account_id": {"type": "string"}}, description="Fetch an account."),
]  # fmt: skip


async def call(name: str, arguments: dict[str, Any], specs: list[Any] = SPECS) -> Any:
    engine = CodeMode(settings())
    try:
        return await engine.call(name, arguments, specs, FakeCaller({}), "run")
    finally:
        await engine.stop()


def test_meta_tools_carry_the_workflow_the_limits_and_the_modules() -> None:
    engine = CodeMode(settings(max_tool_calls=7, execution_timeout=3, wall_timeout=9))
    search, docs, run = engine.meta_tools(SPECS)
    assert {search.name, docs.name, run.name} == META_TOOL_NAMES
    assert search.description is not None and run.description is not None
    assert "1) search_tools finds tools; 2) get_tool_docs" in search.description
    assert search.description.endswith("Modules: crm, tickets.")
    assert "Per run: 7 tool calls, 3 s of execution, 9 s in all, 64 MiB; output cut at 64 KiB." in run.description
    assert search.input_schema["required"] == ["query"] and docs.input_schema["required"] == ["names"]
    assert run.input_schema == {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}
    assert search.annotations is not None and search.annotations.read_only_hint is True
    assert "Modules" not in (engine.meta_tools()[0].description or "")


async def test_search_answers_with_signatures_and_summaries() -> None:
    result = await call("search_tools", {"query": "find tickets", "limit": 1})
    assert text_of(result) == (
        "1 of 3 tools for 'find tickets', best first; get_tool_docs(names=[...]) gives their full stubs.\n"
        "tickets.search_tickets(query: str) -> Any\n"
        "    Find support tickets by text."
    )


async def test_search_without_a_match_lists_the_modules() -> None:
    result = await call("search_tools", {"query": "kubernetes"})
    assert not result.is_error
    assert text_of(result) == (
        "No tool matches 'kubernetes'. Modules: crm (1 tools), tickets (2 tools). Try other words, or a module name."
    )
    assert text_of(await call("search_tools", {"query": "x"}, [])) == (
        "No tools are available through Code Mode to this key."
    )


async def test_docs_accept_any_spelling_and_point_out_unknown_names() -> None:
    result = await call("get_tool_docs", {"names": ["tickets__close_ticket", "tickets.close_tickt"]})
    assert not result.is_error
    text = text_of(result)
    assert "async def close_ticket(ticket_id: str) -> Any:" in text
    assert text.endswith(
        "# Unknown tool(s): 'tickets.close_tickt'. Did you mean: tickets.close_ticket, tickets.search_tickets? "
        "Names are `module.function`, as search_tools prints them."
    )
    only_unknown = await call("get_tool_docs", {"names": "nothing.here"})
    assert only_unknown.is_error and text_of(only_unknown).startswith("Unknown tool(s): 'nothing.here'.")


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("search_tools", {}, "search_tools needs 'query': a non-empty string of keywords"),
        ("search_tools", {"query": "  "}, "search_tools needs 'query': a non-empty string of keywords"),
        ("search_tools", {"query": "x", "limit": 0}, "search_tools 'limit' must be an integer from 1 to 50"),
        ("search_tools", {"query": "x", "limit": True}, "search_tools 'limit' must be an integer from 1 to 50"),
        ("search_tools", {"query": "x", "limit": "5"}, "search_tools 'limit' must be an integer from 1 to 50"),
        ("search_tools", {"query": "x", "top": 5}, "search_tools got unknown argument(s) 'top'; it takes limit, query"),
        ("get_tool_docs", {"names": []}, "get_tool_docs needs 'names': a list of tool names such as ['docs.search']"),
        ("get_tool_docs", {"names": [1]}, "get_tool_docs needs 'names': a list of tool names such as ['docs.search']"),
        ("get_tool_docs", {"names": ["a"] * 21}, "get_tool_docs takes at most 20 names at once"),
        ("run_code", {}, "run_code needs 'code': the Python program to run, as a string"),
        ("run_code", {"code": 42}, "run_code needs 'code': the Python program to run, as a string"),
        ("run_code", {"code": "1\x00"}, "run_code 'code' contains a NUL character"),
        ("run_code", {"code": "1", "lang": "py"}, "run_code got unknown argument(s) 'lang'; it takes code"),
    ],
)  # fmt: skip
async def test_bad_arguments_get_an_error_result_naming_the_problem(
    name: str, arguments: dict[str, Any], message: str
) -> None:
    result = await call(name, arguments)
    assert result.is_error
    assert text_of(result) == message


async def test_a_name_that_is_not_a_meta_tool_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="'tickets__close_ticket' is not a Code Mode meta-tool"):
        await call("tickets__close_ticket", {})


async def test_the_reserved_module_names_are_exactly_the_sandbox_s_own_modules() -> None:
    candidates = sorted(name for name in sys.stdlib_module_names if name.isidentifier() and not name.startswith("_"))
    code = (
        f"found = []\nfor name in {candidates!r}:\n"
        "    try:\n        exec('import ' + name)\n        found.append(name)\n"
        "    except Exception:\n        pass\nfound"
    )
    engine = CodeMode(settings())
    try:
        result = await engine.call("run_code", {"code": code}, [], FakeCaller({}), "run")
    finally:
        await engine.stop()
    assert set(result_json(result)) == SANDBOX_MODULES


async def test_a_toolbox_kept_by_the_hub_serves_every_meta_tool_and_is_indexed_once() -> None:
    toolbox = Toolbox(SPECS)
    engine = CodeMode(settings())
    try:
        search = await engine.call("search_tools", {"query": "account"}, toolbox, FakeCaller({}), "run")
        docs = await engine.call("get_tool_docs", {"names": ["crm.get_account"]}, toolbox, FakeCaller({}), "run")
    finally:
        await engine.stop()
    assert "crm.get_account(account_id: str | None = None) -> Any" in text_of(search)
    assert "async def get_account(account_id: str | None = None) -> Any:" in text_of(docs)
    assert toolbox.index is toolbox.index
    assert engine.meta_tools(toolbox)[0].description == engine.meta_tools(SPECS)[0].description
