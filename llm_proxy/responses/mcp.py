"""OpenAI's hosted MCP tool in a Responses request, meaning a server of the gateway's own MCP hub.

`{"type": "mcp", "server_label": "<server>", "allowed_tools": [...], "require_approval": "never"}` with no
`server_url` names the hub server `<server>`: its tools (narrowed by `allowed_tools`, and always by the key's `mcp`
allowlist) are offered to the model in agent mode, and the gateway runs them. `require_approval` is OpenAI's:
`"always"` (the default, as on OpenAI), `"never"`, or `{"always": {"tool_names": [...]}, "never": {...}}` (a tool
named in neither needs approval). Remote servers (`server_url`, `connector_id`) are refused: the gateway proxies its
own hub only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from toolpolicy.errors import InvalidRequest
from toolpolicy.globs import GlobSet

SEPARATOR = "__"
"""Between a hub server's name and its tool's, as `/mcp` names tools (`<server>__<tool>`)."""
SERVER_LABEL = re.compile(r"^[a-z0-9-]{1,64}$")
"""Hub server names (`mcp_servers:` keys)."""
MAX_TOOL_NAMES = 256


def qualified(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{tool}"


def split_name(name: str) -> tuple[str, str]:
    """(server, tool) of a hub tool name."""
    server, _, tool = name.partition(SEPARATOR)
    return server, tool


def literal_glob(name: str) -> str:
    """A glob that matches exactly `name`."""
    return "".join(f"[{char}]" if char in "*?[" else char for char in name)


@dataclass(frozen=True, slots=True)
class HostedMcp:
    """One `mcp` entry of `tools`."""

    index: int
    """Its place in `tools`, for errors."""
    server: str
    allowed: frozenset[str] | None
    """The tool names `allowed_tools` gives (the server's own names), or None for all."""
    always: frozenset[str] | None
    """Tools that need approval; None means every tool not in `never`."""
    never: frozenset[str]

    def globs(self) -> list[str]:
        if self.allowed is None:
            return [qualified(self.server, "*")]
        return [literal_glob(qualified(self.server, tool)) for tool in sorted(self.allowed)]

    def selects(self, name: str) -> bool:
        server, tool = split_name(name)
        return server == self.server and (self.allowed is None or tool in self.allowed)

    def needs_approval(self, tool: str) -> bool:
        if self.always is not None:
            return tool in self.always
        return tool not in self.never


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _names(value: Any, where: str) -> frozenset[str]:
    if isinstance(value, dict):
        value = value.get("tool_names", [])
        where = f"{where}.tool_names"
    if not isinstance(value, list) or len(value) > MAX_TOOL_NAMES:
        raise _fail(f"'{where}' must be a list of at most {MAX_TOOL_NAMES} tool names", where)
    if not all(isinstance(name, str) and name for name in value):
        raise _fail(f"'{where}' must hold tool names (strings)", where)
    return frozenset(value)


def parse(tool: dict[str, Any], index: int) -> HostedMcp:
    """An `mcp` entry of `tools`, checked; InvalidRequest names the field."""
    where = f"tools[{index}]"
    for remote in ("server_url", "connector_id"):
        if tool.get(remote) is not None:
            raise _fail(
                f"{where}.{remote}: remote MCP servers are not proxied by this gateway; "
                "name one of the gateway's MCP servers in 'server_label' and leave out 'server_url'",
                f"{where}.{remote}",
            )
    label = tool.get("server_label")
    if not isinstance(label, str) or not SERVER_LABEL.match(label):
        raise _fail(f"{where}.server_label must name one of the gateway's MCP servers", f"{where}.server_label")
    allowed = tool.get("allowed_tools")
    names = None if allowed is None else _names(allowed, f"{where}.allowed_tools")
    approval = tool.get("require_approval")
    place = f"{where}.require_approval"
    if approval is None or approval == "always":
        return HostedMcp(index, label, names, None, frozenset())
    if approval == "never":
        return HostedMcp(index, label, names, frozenset(), frozenset())
    if not isinstance(approval, dict) or not set(approval) <= {"always", "never"}:
        raise _fail(
            f"'{place}' must be 'always', 'never' or {{\"always\": {{\"tool_names\": [...]}}, \"never\": {{...}}}}",
            place,
        )
    never = _names(approval["never"], f"{place}.never") if approval.get("never") is not None else frozenset()
    always = _names(approval["always"], f"{place}.always") if approval.get("always") is not None else None
    return HostedMcp(index, label, names, always, never)


def hosted_tools(body: dict[str, Any]) -> list[HostedMcp]:
    """The request's `mcp` tools, checked (at most one per server)."""
    found: list[HostedMcp] = []
    for index, tool in enumerate(body.get("tools") or ()):
        if isinstance(tool, dict) and tool.get("type") == "mcp":
            entry = parse(tool, index)
            if any(other.server == entry.server for other in found):
                raise _fail(f"server_label {entry.server!r} is given twice", f"tools[{index}].server_label")
            found.append(entry)
    return found


def without_mcp(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with its `mcp` tools left out (what a chat model is sent of them are the hub's function tools)."""
    tools = [tool for tool in body.get("tools") or () if not (isinstance(tool, dict) and tool.get("type") == "mcp")]
    return {**body, "tools": tools}


@dataclass(frozen=True, slots=True)
class HostedSet:
    """All of a request's `mcp` tools."""

    entries: list[HostedMcp]

    def globs(self) -> GlobSet:
        return GlobSet.of(glob for entry in self.entries for glob in entry.globs())

    def entry_for(self, name: str) -> HostedMcp | None:
        return next((entry for entry in self.entries if entry.selects(name)), None)

    def needs_approval(self, name: str) -> bool:
        """Whether the model's call of hub tool `name` waits for the client's approval."""
        entry = self.entry_for(name)
        return entry is not None and entry.needs_approval(split_name(name)[1])

    def server(self, label: str) -> HostedMcp | None:
        return next((entry for entry in self.entries if entry.server == label), None)
