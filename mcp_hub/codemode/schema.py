"""JSON Schema as Python type expressions, with a TypedDict for every object that names its properties.

What a model needs from a schema is its shape, not its validation rules: `string` -> `str`, enums and `const` ->
`Literal[...]`, `anyOf`/`oneOf`/type lists -> unions, arrays -> `list[T]`, objects with properties -> a `TypedDict`
(optional keys as `NotRequired`), other objects -> `dict[str, T]`, anything unknown or missing -> `Any`. Local
`$ref`s (`#/$defs/...`, `#/definitions/...`, `#`) are followed, recursive ones end in a quoted forward reference.
"""

from __future__ import annotations

import json
import keyword
import re
from typing import Any

MAX_DEPTH = 12
COMPACT_LITERALS = 4
"""In one-line signatures, longer enums show their first values and `...`."""

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}


def pascal(text: str) -> str:
    """`created_at`, `createdAt`, `created-at` -> `CreatedAt`."""
    return "".join(word[:1].upper() + word[1:] for word in _WORDS.findall(text))


def literal(value: Any) -> str | None:
    """The Python literal of a JSON scalar, or None when it is not one."""
    if value is None or isinstance(value, bool | int | str) or isinstance(value, float) and value == value:
        return repr(value)
    return None


def union(parts: list[str]) -> str:
    unique = list(dict.fromkeys(parts))
    if "Any" in unique:
        return "Any"
    if "None" in unique:
        unique = [part for part in unique if part != "None"] + ["None"]
    return " | ".join(unique) or "Any"


class TypeRenderer:
    """Renders schemas of one response; the TypedDicts they need are collected in `classes`, dependencies first."""

    def __init__(self, *, compact: bool = False) -> None:
        self.compact = compact
        self.classes: dict[str, str] = {}
        """Class name -> its source, in definition order."""
        self._named: dict[str, str] = {}
        self._taken: set[str] = set()
        self._refs: dict[tuple[int, str], str] = {}

    def render(self, schema: Any, *, root: Any, hint: str) -> str:
        """The type expression of `schema`; `root` resolves `$ref`s, `hint` names TypedDicts made for objects."""
        return self._render(schema, root if isinstance(root, dict) else {}, hint, 0)

    def _render(self, schema: Any, root: dict[str, Any], hint: str, depth: int) -> str:
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return "Any"
        if isinstance(schema.get("$ref"), str):
            return self._ref(schema["$ref"], root, depth)
        if "const" in schema:
            value = literal(schema["const"])
            return f"Literal[{value}]" if value is not None else "Any"
        if isinstance(schema.get("enum"), list):
            return self._enum(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                return union([self._render(option, root, hint, depth + 1) for option in schema[key]])
        if isinstance(schema.get("allOf"), list):
            return self._all_of(schema["allOf"], root, hint, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            return union([self._typed({**schema, "type": each}, root, hint, depth) for each in kind])
        return self._typed(schema, root, hint, depth)

    def _typed(self, schema: dict[str, Any], root: dict[str, Any], hint: str, depth: int) -> str:
        kind = schema.get("type")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else None
        if isinstance(kind, str) and kind in _SCALARS:
            return _SCALARS[kind]
        if kind == "array":
            items = schema.get("items", schema.get("prefixItems"))
            if isinstance(items, list):
                return f"list[{union([self._render(item, root, hint, depth + 1) for item in items])}]"
            return f"list[{self._render(items, root, f'{hint}Item', depth + 1)}]"
        if kind == "object":
            properties = schema.get("properties")
            if isinstance(properties, dict) and properties:
                return self._typed_dict(schema, properties, root, hint, depth)
            extra = schema.get("additionalProperties")
            value = self._render(extra, root, f"{hint}Value", depth + 1) if isinstance(extra, dict) else "Any"
            return f"dict[str, {value}]"
        return "Any"

    def _enum(self, values: list[Any]) -> str:
        literals = [literal(value) for value in values]
        if not literals or any(value is None for value in literals):
            return "Any"
        has_none = "None" in literals
        shown = [value for value in literals if value != "None" and value is not None]
        if self.compact and len(shown) > COMPACT_LITERALS:
            shown = [*shown[:COMPACT_LITERALS], "..."]
        rendered = f"Literal[{', '.join(shown)}]" if shown else "None"
        return f"{rendered} | None" if has_none and shown else rendered

    def _all_of(self, parts: list[Any], root: dict[str, Any], hint: str, depth: int) -> str:
        if len(parts) == 1:
            return self._render(parts[0], root, hint, depth + 1)
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in parts:
            resolved = self._resolve(part, root)
            if not isinstance(resolved, dict) or not isinstance(resolved.get("properties"), dict):
                return "Any"
            merged["properties"].update(resolved["properties"])
            merged["required"].extend(resolved.get("required") or [])
        return self._render(merged, root, hint, depth + 1)

    def _resolve(self, schema: Any, root: dict[str, Any]) -> Any:
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not isinstance(ref, str):
            return schema
        return _follow(ref, root)

    def _ref(self, ref: str, root: dict[str, Any], depth: int) -> str:
        key = (id(root), ref)
        if key in self._refs:
            # Rendered already, or being rendered further up: a recursive type refers to itself by name.
            name = self._refs[key]
            return name if name in self.classes else f'"{name}"'
        target = _follow(ref, root)
        if target is None:
            return "Any"
        name = pascal(ref.rsplit("/", 1)[-1]) if ref != "#" else pascal(str(root.get("title") or "Root"))
        is_class = isinstance(target, dict) and isinstance(target.get("properties"), dict) and target["properties"]
        if not is_class:
            return self._render(target, root, name or "Ref", depth + 1)
        self._refs[key] = self._claim(name or "Ref")
        return self._typed_dict(target, target["properties"], root, self._refs[key], depth, claimed=True)

    def _claim(self, name: str) -> str:
        candidate, n = name, 2
        while candidate in self._taken:
            candidate, n = f"{name}{n}", n + 1
        self._taken.add(candidate)
        return candidate

    def _typed_dict(
        self,
        schema: dict[str, Any],
        properties: dict[str, Any],
        root: dict[str, Any],
        hint: str,
        depth: int,
        *,
        claimed: bool = False,
    ) -> str:
        fingerprint = json.dumps(schema, sort_keys=True, default=str)
        if fingerprint in self._named:
            return self._named[fingerprint]
        name = hint if claimed else self._claim(pascal(str(schema.get("title") or "")) or hint or "Object")
        self._named[fingerprint] = name
        required = {key for key in schema.get("required") or [] if isinstance(key, str)}
        fields = []
        for key, prop in properties.items():
            rendered = self._render(prop, root, f"{name}{pascal(str(key))}", depth + 1)
            fields.append((str(key), rendered if key in required else f"NotRequired[{rendered}]", _summary(prop)))
        self.classes[name] = _class_source(name, fields, _summary(schema))
        return name


def _follow(ref: str, root: dict[str, Any]) -> Any:
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _summary(schema: Any) -> str:
    text = schema.get("description") if isinstance(schema, dict) else None
    return " ".join(text.split()) if isinstance(text, str) else ""


def _class_source(name: str, fields: list[tuple[str, str, str]], description: str) -> str:
    if all(key.isidentifier() and not keyword.iskeyword(key) for key, _, _ in fields):
        lines = [f"class {name}(TypedDict):"]
        if description:
            lines.append(f"    # {description}")
        lines += [f"    {key}: {kind}" + (f"  # {text}" if text else "") for key, kind, text in fields]
        return "\n".join(lines)
    # Keys that are not identifiers (`class`, `x-id`) need the functional form.
    lines = [f"# {description}"] if description else []
    lines.append(f"{name} = TypedDict({name!r}, {{")
    lines += [f"    {key!r}: {kind}," + (f"  # {text}" if text else "") for key, kind, text in fields]
    lines.append("})")
    return "\n".join(lines)
