"""A program reaches only the tools it was given: every way round that raises inside the sandbox.

The fake caller knows a tool the key may not use on an allowed server (`docs.drop_index`) and a whole server the
key may not use (`admin`); neither is in the specs, so neither may ever be called, whatever the program tries.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest

from mcp_hub.codemode import CodeMode
from mcp_hub.codemode.bindings import Bindings
from mcp_hub.codemode.toolbox import Toolbox
from tests.mcp_hub.codemode.conftest import FakeCaller, result_json, settings, spec, text_of, text_result

pytestmark = pytest.mark.anyio

ALLOWED = [spec("docs", "search", {"query": {"type": "string"}})]


async def answer(arguments: dict[str, Any]) -> types.CallToolResult:
    return text_result({"ok": True})


@pytest.fixture
def caller() -> FakeCaller:
    return FakeCaller({("docs", "search"): answer, ("docs", "drop_index"): answer, ("admin", "delete_all"): answer})


ATTEMPTS = {
    "alias": "t = docs\nt.drop_index()",
    "alias of a function": "s = docs.search\ns.drop_index()",
    "getattr": "getattr(docs, 'drop_index')()",
    "getattr built from strings": "getattr(docs, 'drop' + '_' + 'index')()",
    "eval of a string": "eval('docs.drop_index()')",
    "exec of a string": "exec('import admin')",
    "from import": "from docs import drop_index",
    "submodule import": "import docs.drop_index",
    "other server import": "import admin",
    "other server by name": "admin.delete_all()",
    "bare name of a denied tool": "drop_index()",
    "awaited bare name": "await delete_all()",
    "dotted name that was never bound": "await admin.delete_all()",
    "dunder import": "__import__('admin')",
    "importlib": "import importlib",
    "sys.modules": "import sys\nsys.modules['admin']",
    "module dict": "docs.__dict__['drop_index']",
    "function globals": "docs.search.__globals__",
    "class walk": "().__class__.__base__.__subclasses__()",
    "builtins": "import builtins",
    "import os and list files": "import os\nos.listdir('/')",
    "environment": "import os\nos.environ['HOME']",
    "getenv": "import os\nos.getenv('HOME')",
    "open a host file": "open('/etc/passwd').read()",
    "pathlib read": "import pathlib\npathlib.Path('/etc/passwd').read_text()",
    "socket": "import socket",
    "subprocess": "import subprocess",
    "inline script dependencies": "# /// script\n# dependencies = ['requests']\n# ///\nimport requests",
}


@pytest.mark.parametrize("attempt", ATTEMPTS.values(), ids=ATTEMPTS.keys())
async def test_an_escape_attempt_raises_inside_the_sandbox(caller: FakeCaller, attempt: str) -> None:
    engine = CodeMode(settings())
    indented = "\n".join(f"    {line}" for line in attempt.splitlines())
    code = (
        f"try:\n{indented}\n    outcome = 'escaped'\n"
        "except Exception as exc:\n    outcome = 'raised ' + type(exc).__name__\noutcome"
    )
    try:
        result = await engine.call("run_code", {"code": code}, ALLOWED, caller, "run")
    finally:
        await engine.stop()
    assert result_json(result).startswith("raised "), text_of(result)
    assert caller.calls == []


async def test_the_allowed_tool_still_works_next_to_the_denied_ones(caller: FakeCaller) -> None:
    engine = CodeMode(settings())
    try:
        result = await engine.call("run_code", {"code": "await docs.search(query='x')"}, ALLOWED, caller, "run")
    finally:
        await engine.stop()
    assert result_json(result) == {"ok": True}
    assert caller.calls == [("docs", "search", {"query": "x"})]


async def test_an_endless_loop_cannot_catch_its_way_past_the_time_limit(caller: FakeCaller) -> None:
    engine = CodeMode(settings(execution_timeout=0.3))
    code = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"
    try:
        result = await engine.call("run_code", {"code": code}, ALLOWED, caller, "run")
    finally:
        await engine.stop()
    assert text_of(result).startswith("Execution time limit reached")


async def test_denied_tools_are_neither_found_nor_documented(caller: FakeCaller) -> None:
    engine = CodeMode(settings())
    search = await engine.call("search_tools", {"query": "drop index delete admin"}, ALLOWED, caller, "r")
    docs = await engine.call("get_tool_docs", {"names": ["docs.drop_index", "admin.delete_all"]}, ALLOWED, caller, "r")
    assert text_of(search).startswith("No tool matches")
    assert docs.is_error and "drop_index" not in text_of(docs).replace("'docs.drop_index'", "")
    assert [tool.name for tool in engine.meta_tools(ALLOWED)] == ["search_tools", "get_tool_docs", "run_code"]
    assert "admin" not in str(engine.meta_tools(ALLOWED))


async def test_the_dispatcher_refuses_any_name_outside_the_toolbox(caller: FakeCaller) -> None:
    bindings = Bindings(Toolbox(ALLOWED), caller)
    for name in ("docs.drop_index", "admin.delete_all", "docs.search.__call__", "docs"):
        with pytest.raises(AttributeError, match="is available"):
            await bindings.dispatch(name, (), {})
    assert caller.calls == []
    assert set(bindings.modules()) == {"docs"} and set(bindings.modules()["docs"]) == {"search"}
