"""How upstream names appear on `/mcp`: `<server>__<tool>` names and `isthmus://<server>/<uri>` resource URIs.

Server names are `[a-z0-9-]+` and never contain `__`, so the first `__` of a qualified name ends the server name.
A qualified name that is not a valid function name for the OpenAI and Anthropic tool APIs (`[A-Za-z0-9_-]{1,64}`:
too long, or a `.` from the upstream) is rewritten deterministically: its invalid characters become `_`, it is cut to
fit, and a short hash of the full name keeps it unique. The catalog keeps the mapping, so the short name routes.
"""

from __future__ import annotations

import hashlib
import re

SEPARATOR = "__"
MAX_NAME = 64
"""The tool name limit of the OpenAI and Anthropic tool APIs."""
HASH_LENGTH = 8
URI_SCHEME = "isthmus://"

_VALID_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def qualified(server: str, name: str) -> str:
    """`<server>__<name>`, unshortened."""
    return f"{server}{SEPARATOR}{name}"


def exposed_name(server: str, name: str, *, salt: int = 0) -> str:
    """The name a tool or prompt of `server` has on `/mcp`; `salt` > 0 picks another hash after a collision."""
    full = qualified(server, name)
    if salt == 0 and _VALID_NAME.match(full):
        return full
    digest = hashlib.sha256(f"{full}#{salt}".encode() if salt else full.encode()).hexdigest()[:HASH_LENGTH]
    safe = _INVALID_CHARS.sub("_", full)
    return f"{safe[: MAX_NAME - HASH_LENGTH - 1]}_{digest}"


def server_of(name: str) -> str | None:
    """The server part of a qualified name, or None when the name has no `__`."""
    server, sep, rest = name.partition(SEPARATOR)
    return server if sep and server and rest else None


def hub_uri(server: str, uri: str) -> str:
    """An upstream resource URI (or URI template) as listed on `/mcp`."""
    return f"{URI_SCHEME}{server}/{uri}"


def split_hub_uri(uri: str) -> tuple[str, str] | None:
    """`(server, upstream uri)` for a URI made by `hub_uri`, else None."""
    if not uri.startswith(URI_SCHEME):
        return None
    server, sep, rest = uri[len(URI_SCHEME) :].partition("/")
    return (server, rest) if sep and server and rest else None
