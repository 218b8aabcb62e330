"""Convert a Claude Desktop, Claude Code or Cursor MCP config (`mcpServers`) into Isthmus' `mcp_servers` block."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from toolpolicy.settings import SERVER_NAME, McpServerSettings

__all__ = ["convert_claude_config", "import_claude_file"]

_COPIED = ("command", "args", "env", "cwd", "url", "headers", "transport")
_HANDLED = {*_COPIED, "type", "disabled"}
_CURSOR_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def convert_claude_config(document: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Return Isthmus `mcp_servers` entries for the document's `mcpServers`, and notes on what changed."""
    servers = document.get("mcpServers")
    if not isinstance(servers, Mapping):
        raise ValueError("the config has no 'mcpServers' object (is it a Claude Desktop or Cursor MCP config?)")
    names = _server_names([str(name) for name in servers])
    result: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for original, entry in servers.items():
        name = names[str(original)]
        if name != original:
            notes.append(f"renamed server {original!r} to {name!r} (names are lowercase letters, digits and '-')")
        if not isinstance(entry, Mapping):
            raise ValueError(f"server {original!r}: its entry must be an object")
        result[name] = _convert_entry(str(original), name, entry, notes)
    return result, notes


def import_claude_file(path: str | Path) -> str:
    """Read a Claude Desktop or Cursor MCP config file and return YAML for isthmus.yaml, notes as comments."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read {path}: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(document, dict) or not isinstance(document.get("mcpServers"), dict):
        raise ValueError(f"{path} has no 'mcpServers' object (is it a Claude Desktop or Cursor MCP config?)")
    servers, notes = convert_claude_config(document)
    comments = "".join(f"# {note}\n" for note in notes)
    return comments + yaml.safe_dump({"mcp_servers": servers}, sort_keys=False, allow_unicode=True)


def _server_names(originals: list[str]) -> dict[str, str]:
    """Map each original name to a valid, unique server name; names already valid keep theirs."""
    taken = {name for name in originals if _valid(name)}
    names: dict[str, str] = {}
    for original in originals:
        if _valid(original):
            names[original] = original
            continue
        base = re.sub(r"[^a-z0-9]+", "-", original.lower()).strip("-") or "server"
        name, suffix = base, 2
        while name in taken:
            name, suffix = f"{base}-{suffix}", suffix + 1
        taken.add(name)
        names[original] = name
    return names


def _valid(name: str) -> bool:
    return SERVER_NAME.match(name) is not None and "__" not in name


def _convert_entry(original: str, name: str, entry: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    copied = {field: entry[field] for field in _COPIED if field in entry}
    converted: dict[str, Any] = _cursor_references(copied)
    if converted != copied:
        notes.append(f"server {name!r}: Cursor's ${{env:VAR}} references became Isthmus' ${{VAR}}")
    kind = entry.get("type")
    if kind == "sse":
        converted.setdefault("transport", "sse")
    elif kind not in (None, "stdio", "http", "streamable-http"):
        raise ValueError(
            f"server {original!r}: unsupported type {kind!r} (expected stdio, http, streamable-http or sse)"
        )
    if entry.get("disabled") is True:
        converted["enabled"] = False
    for field in ("env", "headers"):
        if isinstance(converted.get(field), Mapping):  # JSON numbers are fine in an environment; make them strings
            converted[field] = {
                str(key): str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
                for key, value in converted[field].items()
            }
    dropped = sorted(set(entry) - _HANDLED)
    if dropped:
        notes.append(f"server {name!r}: dropped unsupported field(s) {', '.join(dropped)}")
    if "envFile" in entry:
        notes.append(f"server {name!r}: put the variables of its envFile in 'env', as ${{VAR}} references")
    literal = [
        f"{field}.{key}"
        for field in ("env", "headers")
        for key, value in converted.get(field, {}).items()
        if isinstance(value, str) and value and "${" not in value
    ]
    if literal:
        notes.append(
            f"server {name!r}: {', '.join(literal)} copied as written; "
            "prefer ${VAR} references so secrets stay out of isthmus.yaml"
        )
    try:
        McpServerSettings.model_validate(converted)
    except ValidationError as exc:
        reasons = "; ".join(_reason(error["loc"], error["msg"]) for error in exc.errors(include_input=False))
        raise ValueError(f"server {original!r} cannot be imported: {reasons}") from None
    return converted


def _reason(loc: tuple[int | str, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")
    return f"{'.'.join(str(part) for part in loc)}: {message}" if loc else message


def _cursor_references(value: Any) -> Any:
    """Rewrite Cursor's `${env:VAR}` as `${VAR}`, in strings, lists and mappings."""
    if isinstance(value, str):
        return _CURSOR_ENV.sub(r"${\1}", value)
    if isinstance(value, list):
        return [_cursor_references(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _cursor_references(item) for key, item in value.items()}
    return value
