"""A Code Mode engine with small limits, and a fake `ToolCaller` that records every call it gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import mcp_types as types
import pytest

from mcp_hub.codemode import CodeMode, ToolSpec
from toolpolicy.settings import CodeModeSettings

Handler = Callable[[dict[str, Any]], Awaitable[types.CallToolResult]]


def text_result(value: Any, *, error: bool = False) -> types.CallToolResult:
    text = value if isinstance(value, str) else json.dumps(value)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error)


def structured_result(value: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(value))], structured_content=value
    )


def spec(
    server: str, name: str, properties: dict[str, Any] | None = None, *, required: tuple[str, ...] = (), **kw: Any
) -> ToolSpec:
    schema: dict[str, Any] = {"type": "object", "properties": properties or {}}
    if required:
        schema["required"] = list(required)
    return ToolSpec(
        server=server, name=name, description=kw.pop("description", f"The {name} tool."), input_schema=schema, **kw
    )


class FakeCaller:
    """Stands in for the hub: answers from handlers by (server, tool) and records each call it receives."""

    def __init__(self, handlers: dict[tuple[str, str], Handler]) -> None:
        self.handlers = handlers
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(self, server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        self.calls.append((server, tool, arguments))
        return await self.handlers[(server, tool)](arguments)


def settings(**overrides: Any) -> CodeModeSettings:
    values: dict[str, Any] = {"execution_timeout": 2.0, "wall_timeout": 5.0, "workers": 2, "max_tool_calls": 10}
    values.update(overrides)
    return CodeModeSettings.model_validate(values)


@pytest.fixture
async def engine() -> AsyncIterator[CodeMode]:
    code_mode = CodeMode(settings())
    await code_mode.start()
    try:
        yield code_mode
    finally:
        await code_mode.stop()


def text_of(result: types.CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def result_json(result: types.CallToolResult) -> Any:
    """The JSON value of a successful run."""
    text = text_of(result)
    assert not result.is_error, text
    head, _, rest = text.partition("\n")
    assert head == "Result:", text
    return json.loads(rest.split("\n\n", 1)[0])
