"""Tools as Python: one-line signatures for search results, full stubs for `get_tool_docs`.

A stub is what a model needs to write a correct call without the JSON Schema: typed parameters (required first,
optional ones with their default, or `None` meaning "not sent"), a docstring describing every parameter, and the
return shape from the tool's `outputSchema`::

    async def create_issue(project: str, summary: str, priority: Literal['low', 'high'] = 'low') -> Issue:
        \"\"\"Create an issue.

        Args:
            project: Key of the project, e.g. OPS.
            ...
        \"\"\"
"""

from __future__ import annotations

from collections.abc import Sequence

from mcp_hub.codemode.schema import TypeRenderer, literal, pascal
from mcp_hub.codemode.toolbox import BoundTool, Param

MAX_DEFAULT = 40
"""Longer defaults show as `...` in signatures; the docstring spells them out."""
_HINTS = (
    ("readOnlyHint", True, "read-only"),
    ("destructiveHint", True, "destructive"),
    ("idempotentHint", True, "idempotent"),
    ("openWorldHint", False, "closed-world"),
)
_TYPED_RETURN = "The tool's structured result, shaped as the return type says."
_UNTYPED_RETURN = "The tool's content: JSON text parsed into dicts and lists, other text as a str."


def _default(param: Param) -> str | None:
    if "default" not in param.schema:
        return None
    value = param.schema["default"]
    text = literal(value) if not isinstance(value, list | dict) else repr(value)
    return text if text is not None and len(text) <= MAX_DEFAULT else "..."


def _parameter(tool: BoundTool, param: Param, types: TypeRenderer) -> str:
    kind = types.render(param.schema, root=tool.spec.input_schema, hint=pascal(tool.function) + pascal(param.name))
    if param.required:
        return f"{param.name}: {kind}"
    default = _default(param)
    if default is None:
        optional = kind if kind == "Any" or kind.endswith("| None") or kind == "None" else f"{kind} | None"
        return f"{param.name}: {optional} = None"
    return f"{param.name}: {kind} = {default}"


def returns(tool: BoundTool, types: TypeRenderer) -> str:
    schema = tool.spec.output_schema
    if not schema:
        return "Any"
    return types.render(schema, root=schema, hint=pascal(tool.function) + "Result")


def signature(tool: BoundTool, types: TypeRenderer, *, qualified: bool = False) -> str:
    """`name(params) -> return`, on one line."""
    params = [_parameter(tool, param, types) for param in tool.params]
    if tool.extra_kwargs:
        params.append("**kwargs: Any")
    name = tool.qualified if qualified else tool.function
    return f"{name}({', '.join(params)}) -> {returns(tool, types)}"


def summary(tool: BoundTool, limit: int = 160) -> str:
    """The first sentence of the description, on one line."""
    text = " ".join((tool.spec.description or "").split())
    if not text:
        return "(no description)"
    end = text.find(". ")
    first = text if end < 0 else text[: end + 1]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def _docstring_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.splitlines())


def _param_doc(param: Param) -> str | None:
    description = " ".join(str(param.schema.get("description") or param.schema.get("title") or "").split())
    notes = []
    if param.name != param.wire:
        notes.append(f"sent as {param.wire!r}")
    if "default" in param.schema and _default(param) == "...":
        notes.append(f"default {param.schema['default']!r}")
    if not description and not notes:
        return None
    suffix = f" ({'; '.join(notes)})" if notes else ""
    return f"{param.name}: {description}{suffix}" if description else f"{param.name}:{suffix}"


def stub(tool: BoundTool, types: TypeRenderer) -> str:
    """The full `async def` of one tool, with its docstring."""
    lines = [(tool.spec.description or "(no description)").strip(), ""]
    documented = [text for text in map(_param_doc, tool.params) if text is not None]
    if tool.extra_kwargs:
        documented.append("**kwargs: any arguments; the tool's schema names none.")
    if documented:
        lines += ["Args:", *(f"    {text}" for text in documented), ""]
    lines.append("Returns:")
    output = tool.spec.output_schema
    if output:
        described = output.get("description") or output.get("title")
        lines.append(f"    {described if isinstance(described, str) else _TYPED_RETURN}")
    else:
        lines.append(f"    {_UNTYPED_RETURN}")
    hints = [label for key, value, label in _HINTS if (tool.spec.annotations or {}).get(key) is value]
    if hints:
        lines += ["", f"Hints: {', '.join(hints)}."]
    body = _indent(_docstring_text("\n".join(line.rstrip() for line in lines).rstrip()), "    ")
    return f'async def {signature(tool, types)}:\n    """{body.lstrip()}\n    """'


def docs(tools: Sequence[BoundTool], modules: dict[str, str]) -> str:
    """Stubs of `tools`, grouped by module, each group with the TypedDicts its signatures use."""
    sections = []
    for module in sorted({tool.module for tool in tools}):
        types = TypeRenderer()
        members = [tool for tool in tools if tool.module == module]
        stubs = [stub(tool, types) for tool in members]
        example = members[0].function
        header = (
            f"# module {module} (server {modules[module]!r}): `import {module}` then "
            f"`await {module}.{example}(...)`, or `from {module} import {example}`"
        )
        sections.append("\n\n".join([header, *types.classes.values(), *stubs]))
    return "\n\n\n".join(sections)


def one_line(tool: BoundTool, types: TypeRenderer) -> str:
    """A search result: the qualified signature, then the one-line summary indented below it."""
    return f"{signature(tool, types, qualified=True)}\n    {summary(tool)}"
