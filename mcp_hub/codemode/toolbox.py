"""The tools of one request as Python sees them: a module per server, an async function per tool.

Upstream names are free-form and Python's are not, so every name is mapped to an identifier, deterministically
and without collisions, and the mapping is kept so that calls translate back:

- a server becomes a module: `-` becomes `_`; a name the sandbox already uses (a standard module such as `time`,
  a builtin such as `open`, a keyword) gets `_server` appended (`from time_server import get_current_time`);
- a tool becomes a function: invalid characters become `_`, leading underscores go (the sandbox hides them), a
  leading digit gets `tool_` in front, a keyword gets `_` appended;
- a parameter: invalid characters become `_`, a keyword gets `_` appended (`class` -> `class_`), a leading digit
  gets `_` in front.

A name that would still collide gets `_2`, `_3`, ... in sorted upstream order.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mcp_hub.codemode.search import SearchIndex
from mcp_hub.codemode.spec import ToolSpec

SANDBOX_MODULES = frozenset(
    {
        "asyncio", "base64", "binascii", "bisect", "collections", "copy", "csv", "dataclasses", "datetime",
        "decimal", "functools", "hashlib", "itertools", "json", "math", "os", "pathlib", "posixpath", "random",
        "re", "sys", "time", "tomllib", "typing", "unicodedata",
    }
)  # fmt: skip
"""Modules pydantic-monty 1.4.0 provides itself; a server module of the same name would never be imported."""

_RESERVED = SANDBOX_MODULES | set(dir(builtins)) | set(keyword.kwlist) | {"result"}
_INVALID = re.compile(r"[^0-9A-Za-z_]")


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def module_name(server: str) -> str:
    name = _INVALID.sub("_", server) or "server"
    if name[0].isdigit():
        name = f"server_{name}"
    return f"{name}_server" if name in _RESERVED else name


def function_name(tool: str) -> str:
    name = _INVALID.sub("_", tool).lstrip("_")
    if not name or name[0].isdigit():
        name = f"tool_{name}"
    return f"{name}_" if keyword.iskeyword(name) else name


def parameter_name(wire: str) -> str:
    name = _INVALID.sub("_", wire) or "arg"
    if name[0].isdigit():
        name = f"_{name}"
    return f"{name}_" if keyword.iskeyword(name) else name


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a bound tool."""

    name: str
    """The Python name."""
    wire: str
    """The name in the tool's `inputSchema`, sent upstream."""
    schema: dict[str, Any]
    required: bool


@dataclass(frozen=True, slots=True)
class BoundTool:
    """A tool with its Python names."""

    spec: ToolSpec
    module: str
    function: str
    params: tuple[Param, ...]
    """Required parameters first, then optional ones, each in the schema's order."""
    extra_kwargs: bool
    """The schema names no properties but accepts any: the function takes `**kwargs`, passed on as they are."""

    @property
    def qualified(self) -> str:
        """`module.function`: how search results and docs name the tool, and how the sandbox reports calls."""
        return f"{self.module}.{self.function}"


def _params(schema: dict[str, Any]) -> tuple[tuple[Param, ...], bool]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required_list = schema.get("required")
    required = {name for name in required_list if isinstance(name, str)} if isinstance(required_list, list) else set()
    wires = [str(name) for name in properties] + sorted(required - set(map(str, properties)))
    ordered = [wire for wire in wires if wire in required] + [wire for wire in wires if wire not in required]
    taken: set[str] = set()
    params = []
    for wire in ordered:
        prop = properties.get(wire)
        params.append(
            Param(
                name=_unique(parameter_name(wire), taken),
                wire=wire,
                schema=prop if isinstance(prop, dict) else {},
                required=wire in required,
            )
        )
    extra = not properties and schema.get("additionalProperties", True) is not False
    return tuple(params), extra


class Toolbox:
    """The tools a request may use, bound to Python names; the only tools a program can reach."""

    def __init__(self, specs: Iterable[ToolSpec]) -> None:
        unique: dict[tuple[str, str], ToolSpec] = {}
        for spec in specs:
            unique.setdefault((spec.server, spec.name), spec)
        modules: dict[str, str] = {}
        taken_modules: set[str] = set()
        for server in sorted({server for server, _ in unique}):
            modules[server] = _unique(module_name(server), taken_modules)
        self.modules: dict[str, str] = {module: server for server, module in modules.items()}
        """Python module name -> server name."""
        functions: dict[str, set[str]] = {module: set() for module in self.modules}
        tools: list[BoundTool] = []
        for (server, name), spec in sorted(unique.items()):
            module = modules[server]
            params, extra = _params(spec.input_schema)
            function = _unique(function_name(name), functions[module])
            tools.append(BoundTool(spec, module, function, params, extra))
        self.tools: tuple[BoundTool, ...] = tuple(tools)
        self._by_name: dict[str, BoundTool] = {}
        for tool in tools:
            for alias in (f"{tool.spec.server}.{tool.spec.name}", f"{tool.spec.server}__{tool.spec.name}"):
                self._by_name.setdefault(alias, tool)
        bare: dict[str, list[BoundTool]] = {}
        for tool in tools:
            for alias in {tool.function, tool.spec.name}:
                bare.setdefault(alias, []).append(tool)
        for alias, matches in bare.items():
            if len(matches) == 1:
                self._by_name.setdefault(alias, matches[0])
        # Python names win over every alias: they are what search results and docs print.
        self._by_name.update({tool.qualified: tool for tool in tools})

    def __len__(self) -> int:
        return len(self.tools)

    @functools.cached_property
    def index(self) -> SearchIndex:
        """The BM25 index of these tools, built on first search (so a Toolbox the hub keeps is indexed once)."""
        return SearchIndex(self.tools)

    def find(self, name: str) -> BoundTool | None:
        """A tool by `module.function`, `server.tool`, `server__tool`, `server/tool`, or a bare name if unique."""
        name = name.strip()
        return self._by_name.get(name) or self._by_name.get(name.replace("/", ".", 1))

    def get(self, qualified: str) -> BoundTool | None:
        """A tool by its exact `module.function` name (what the sandbox reports for a call)."""
        tool = self._by_name.get(qualified)
        return tool if tool is not None and tool.qualified == qualified else None

    def in_module(self, module: str) -> Sequence[BoundTool]:
        return [tool for tool in self.tools if tool.module == module]
