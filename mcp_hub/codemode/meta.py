"""The three meta-tools as MCP tool definitions, and the checking of their arguments.

The descriptions carry the workflow (search, read docs, run code) and the limits, in as few words as a model needs:
they are sent with every model request, so they are the whole cost of Code Mode's tool list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mcp_types as types

from toolpolicy.settings import CodeModeSettings

SEARCH_TOOLS = "search_tools"
GET_TOOL_DOCS = "get_tool_docs"
RUN_CODE = "run_code"
META_TOOL_NAMES = frozenset({SEARCH_TOOLS, GET_TOOL_DOCS, RUN_CODE})

DEFAULT_SEARCH_LIMIT = 10
MAX_SEARCH_LIMIT = 50
MAX_QUERY = 1000
MAX_DOC_NAMES = 20


class MetaArgumentError(ValueError):
    """A meta-tool was called with arguments it cannot use; the message names the argument."""


def definitions(settings: CodeModeSettings, modules: Sequence[str] = ()) -> list[types.Tool]:
    available = f" Modules: {', '.join(modules)}." if modules else ""
    read_only = types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
    return [
        types.Tool(
            name=SEARCH_TOOLS,
            description=(
                "Code Mode: tools are used from Python, not called directly. 1) search_tools finds tools; "
                "2) get_tool_docs gives their Python stubs; 3) run_code runs a program that calls them and returns "
                "only what you need. Search names, descriptions and parameters by keywords; returns one-line "
                f"signatures.{available}"
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Keywords, e.g. 'create issue'."},
                    "limit": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_SEARCH_LIMIT,
                        "default": DEFAULT_SEARCH_LIMIT,
                    },
                },
                "required": ["query"],
            },
            annotations=read_only,
        ),
        types.Tool(
            name=GET_TOOL_DOCS,
            description="Python stubs (parameters, docstrings, return types) of tools named `module.function`.",
            input_schema={
                "type": "object",
                "properties": {
                    "names": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_DOC_NAMES}
                },
                "required": ["names"],
            },
            annotations=read_only,
        ),
        types.Tool(
            name=RUN_CODE,
            description=(
                "Run Python (a subset: no third-party packages, no class inheritance; json, re, math, datetime, "
                "collections, itertools, asyncio work). Each module is bound: `await docs.search(query='x')`, or "
                "`from docs import search`. Tools are async; `await asyncio.gather(...)` runs calls in parallel. A "
                "failed call raises RuntimeError. Returns the last expression (or `result`) as JSON, plus printed "
                f"output. Per run: {settings.max_tool_calls} tool calls, {settings.execution_timeout:g} s of "
                f"execution, {settings.wall_timeout:g} s in all, {settings.max_memory_bytes // 2**20} MiB; output "
                f"cut at {settings.max_output_bytes // 1024} KiB. Filter and aggregate in code; return little."
            ),
            input_schema={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        ),
    ]


def _check_keys(tool: str, arguments: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise MetaArgumentError(
            f"{tool} got unknown argument(s) {', '.join(map(repr, unknown))}; it takes {', '.join(sorted(allowed))}"
        )


def search_arguments(arguments: Mapping[str, Any]) -> tuple[str, int]:
    _check_keys(SEARCH_TOOLS, arguments, {"query", "limit"})
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise MetaArgumentError("search_tools needs 'query': a non-empty string of keywords")
    if len(query) > MAX_QUERY:
        raise MetaArgumentError(f"search_tools 'query' is longer than {MAX_QUERY} characters")
    limit = arguments.get("limit", DEFAULT_SEARCH_LIMIT)
    if limit is None:
        limit = DEFAULT_SEARCH_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise MetaArgumentError(f"search_tools 'limit' must be an integer from 1 to {MAX_SEARCH_LIMIT}")
    return query, limit


def docs_arguments(arguments: Mapping[str, Any]) -> list[str]:
    _check_keys(GET_TOOL_DOCS, arguments, {"names"})
    names = arguments.get("names")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise MetaArgumentError("get_tool_docs needs 'names': a list of tool names such as ['docs.search']")
    if len(names) > MAX_DOC_NAMES:
        raise MetaArgumentError(f"get_tool_docs takes at most {MAX_DOC_NAMES} names at once")
    return list(dict.fromkeys(names))


def code_argument(arguments: Mapping[str, Any], max_bytes: int) -> str:
    _check_keys(RUN_CODE, arguments, {"code"})
    code = arguments.get("code")
    if not isinstance(code, str) or not code.strip():
        raise MetaArgumentError("run_code needs 'code': the Python program to run, as a string")
    size = len(code.encode())
    if size > max_bytes:
        raise MetaArgumentError(f"run_code 'code' is {size} bytes; the limit is {max_bytes}")
    if "\x00" in code:
        raise MetaArgumentError("run_code 'code' contains a NUL character")
    return code
