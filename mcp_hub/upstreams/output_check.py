"""A tool's output schema compiled into a plain Python check, for the `tools/call` fast path (`fast_call.py`).

The MCP SDK's client validates a result's structured content with a compiled `jsonschema` validator and
`best_match` (about 50 µs for a two-field object, a sizeable share of a fast call). Most output schemas use a small
part of JSON Schema: `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `const` and
annotations. `compiled(schema)` turns such a schema into a function that answers True only when the instance is
certainly valid under draft 2020-12 (the SDK's default); for anything else (a keyword outside that part, `$schema`,
`$ref`, a float where an integer is wanted, a schema that is not valid JSON Schema) it has no check (None) or answers
False, and the SDK's own validation runs, so every refusal and its message stay the SDK's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

Check = Callable[[Any], bool]

_ANNOTATIONS: Final[dict[str, tuple[type, ...]]] = {
    "title": (str,),
    "description": (str,),
    "default": (object,),
    "examples": (list,),
    "deprecated": (bool,),
    "readOnly": (bool,),
    "writeOnly": (bool,),
}
"""Keywords that constrain nothing, with the types the metaschema allows them (anything else: not a valid schema)."""
_KEYWORDS: Final = frozenset(_ANNOTATIONS) | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
}
_LIMIT: Final = 4096
"""Schemas whose checks `compiled` keeps; beyond that it starts over."""
_compiled: dict[int, tuple[Mapping[str, Any], Check | None]] = {}


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


_TYPES: Final[dict[str, Check]] = {
    "object": lambda value: type(value) is dict,
    "array": lambda value: type(value) is list,
    "string": lambda value: type(value) is str,
    "integer": _is_int,  # 1.0 is an integer to JSON Schema: left to the SDK
    "number": _is_number,
    "boolean": lambda value: type(value) is bool,
    "null": lambda value: value is None,
}


def compiled(schema: Mapping[str, Any]) -> Check | None:
    """The check of `schema` (an output schema the SDK session holds, reused per call), or None: the SDK decides.

    Kept per schema object, which is held with its check so that its `id` cannot be reused meanwhile.
    """
    known = _compiled.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    if len(_compiled) >= _LIMIT:
        _compiled.clear()
    check = _compile(schema)
    _compiled[id(schema)] = (schema, check)
    return check


def _compile(schema: Any) -> Check | None:
    if schema is True:
        return lambda value: True
    if not isinstance(schema, dict) or not _KEYWORDS.issuperset(schema):
        return None
    if not all(isinstance(schema[key], _ANNOTATIONS[key]) for key in _ANNOTATIONS.keys() & schema.keys()):
        return None
    checks: list[Check] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else kind
        if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) and k in _TYPES for k in kinds):
            return None
        if len(set(kinds)) != len(kinds):
            return None
        tests = [_TYPES[k] for k in kinds]
        checks.append(tests[0] if len(tests) == 1 else _any_of(tests))
    if "enum" in schema or "const" in schema:
        return None  # equality as JSON Schema defines it (1 == 1.0, True != 1) is left to the SDK
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        objects = _object_check(schema)
        if objects is None:
            return None
        checks.append(objects)
    if "items" in schema:
        item = _compile(schema["items"])
        if item is None:
            return None
        checks.append(_items_check(item))
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:  # the commonest (`type` with `properties`): two calls, no loop
        first, second = checks
        return lambda value: first(value) and second(value)
    return _all_of(checks)


# Combinators as plain loops: a generator per call under `any`/`all` costs more than the checks it runs.


def _any_of(tests: list[Check]) -> Check:
    def check(value: Any) -> bool:
        for test in tests:
            if test(value):
                return True
        return False

    return check


def _all_of(checks: list[Check]) -> Check:
    def check(value: Any) -> bool:
        for test in checks:
            if not test(value):
                return False
        return True

    return check


def _items_check(item: Check) -> Check:
    def check(value: Any) -> bool:
        if type(value) is not list:
            return True  # `items` says nothing of other types
        for element in value:
            if not item(element):
                return False
        return True

    return check


def _object_check(schema: dict[str, Any]) -> Check | None:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list):
        return None
    if not all(isinstance(name, str) for name in required) or len(set(required)) != len(required):
        return None
    known: dict[str, Check] = {}
    for name, subschema in properties.items():
        property_check = _compile(subschema)
        if property_check is None:
            return None
        known[name] = property_check
    if extra is False:
        others: Check | None = None
        closed = True
    else:
        others = _compile(extra)
        closed = False
        if others is None:
            return None

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return True  # `properties` and `required` say nothing of other types
        for name in required:
            if name not in value:
                return False
        for name, item in value.items():
            test = known.get(name)
            if test is not None:
                if not test(item):
                    return False
            elif closed or (others is not None and not others(item)):
                return False
        return True

    return check
