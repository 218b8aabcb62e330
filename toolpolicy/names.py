"""Names callers send that the gateway routes on or echoes: model names, tool names, request ids.

A name is checked once, at the edge, before it reaches an allowlist, an upstream, an audit record or a response
header. A NUL, a control character or a lone UTF-16 surrogate (`"\\ud800"` decodes to one) cannot name anything
real, yet would break whatever carries it later: an HTTP header, a provider's URL, the audit store's text column.
"""

from __future__ import annotations

import re

from toolpolicy.errors import InvalidRequest

MAX_NAME_LENGTH = 256
"""Longest model or tool name accepted (MCP asks tool names to stay within 128; `server__` comes on top)."""

_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def model_name(value: str, *, param: str = "model") -> str:
    """A model name or alias as a caller sent it: 1-256 visible ASCII characters (every provider's ids are)."""
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"'{param}' is {len(value)} characters long; model names have at most 256", param=param)
    if not _VISIBLE_ASCII.fullmatch(value):
        raise InvalidRequest(
            f"'{param}' must be a model name of visible ASCII characters (no spaces, control characters or "
            "other text), e.g. openai/gpt-4o-mini",
            param=param,
        )
    return value


def tool_name(value: str, *, param: str = "name") -> str:
    """A tool name as a caller sent it: 1-256 printable characters (upstreams may use any script)."""
    if not value:
        raise InvalidRequest(f"'{param}' must not be empty", param=param)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"'{param}' is {len(value)} characters long; tool names have at most 256", param=param)
    if not value.isprintable():
        raise InvalidRequest(
            f"'{param}' has a control character, a lone UTF-16 surrogate or another non-printable character",
            param=param,
        )
    return value


def header_value(value: str) -> str:
    """`value` made safe for a response header: anything but visible ASCII and spaces becomes `?`."""
    return "".join(char if " " <= char <= "~" else "?" for char in value[:MAX_NAME_LENGTH])
