"""Turning pydantic validation errors into messages that name the field."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from toolpolicy.errors import InvalidRequest


def loc_path(loc: Sequence[int | str]) -> str:
    """`("providers", "openai", "keys", 0, "value")` -> `providers.openai.keys[0].value`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def describe(error: ValidationError, *, prefix: str = "") -> list[tuple[str, str]]:
    """Each problem as (path, message), never echoing the rejected input (it may be a secret)."""
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_input=False, include_url=False):
        path = loc_path([*([prefix] if prefix else []), *item["loc"]])
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        else:
            message = item["msg"].removeprefix("Value error, ")
        problems.append((path, message))
    return problems


def invalid_request(error: ValidationError) -> InvalidRequest:
    """One InvalidRequest listing every problem, with `param` set to the first field."""
    problems = describe(error)
    message = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
    return InvalidRequest(message or "invalid request", param=problems[0][0] if problems else None)
