"""Bundles (curated MCP servers): a named selection of tools, prompts and resources served at `/mcp/<bundle>`.

```yaml
mcp_bundles:
  support:
    tools: ["crm__*", "docs__search"]
    prompts: ["crm__*"]
    resources: ["isthmus://docs/*"]
    overrides:
      docs__search: {rename: find_docs, description: "Search the support handbook."}
```

Every pattern names the real tool (`<server>__<tool>`, the upstream's own name, whatever overrides show clients),
so a bundle reads like a key's allowlist. A key on `/mcp/<bundle>` sees what the bundle selects *and* its own
allowlist allows. This module also checks, once the whole config is read, the cross-references of bundles and of
every tool override (server-level ones included): the config paths in the problems are those of the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from toolpolicy.globs import GlobSet
from toolpolicy.tool_overrides import ToolOverride

if TYPE_CHECKING:
    from toolpolicy.settings import McpServerSettings

SEPARATOR = "__"
"""Between server and tool in the hub's names (`mcp_hub.naming`, which this layer cannot import)."""
HUB_URI_SCHEME = "isthmus://"
"""The scheme of the hub's resource URIs (`mcp_hub.naming.hub_uri`)."""
BUNDLE_NAME = re.compile(r"^[a-z0-9-]+$")
_GLOB_CHARS = re.compile(r"[*?\[]")


class McpBundleSettings(BaseModel):
    """A curated MCP server: one URL (`/mcp/<bundle>`) with exactly the tools, prompts and resources selected here."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    description: str | None = None
    """What the bundle is for (shown in the admin API only)."""
    tools: list[str] = Field(default_factory=list)
    """Globs over `<server>__<tool>` (the upstream's own tool name): the tools the bundle serves."""
    prompts: list[str] = Field(default_factory=list)
    """Globs over `<server>__<prompt>`: the prompts the bundle serves (none by default)."""
    resources: list[str] = Field(default_factory=list)
    """Globs over a resource's (or URI template's) `/mcp` URI, `isthmus://<server>/<uri>`, or its server-qualified
    name, `<server>__<name>`: the resources and templates the bundle serves (none by default)."""
    overrides: dict[str, ToolOverride] = Field(default_factory=dict)
    """Tool overrides on this bundle only, keyed by `<server>__<tool>`; set fields replace the server-level
    override's, which still applies for the fields left out."""


def _literal(pattern: str) -> bool:
    return _GLOB_CHARS.search(pattern) is None


def _pattern_problem(pattern: str, servers: Mapping[str, McpServerSettings], *, resource: bool) -> str | None:
    """What is wrong with one bundle pattern, or None."""
    shape = "isthmus://<server>/<uri> or <server>__<name>" if resource else "<server>__<name>, e.g. crm__*"
    if not pattern:
        return f"an empty pattern matches nothing; write {shape}"
    if any(char.isspace() or char == "," for char in pattern):
        return f"{pattern!r}: one pattern per list item, without spaces or commas"
    if pattern.count("[") > pattern.count("]"):
        return f"{pattern!r}: unclosed '[' (write '[[]' for a literal '[')"
    if resource and pattern.startswith(HUB_URI_SCHEME):
        server, sep, _ = pattern[len(HUB_URI_SCHEME) :].partition("/")
        if not sep and _literal(server):
            return f"{pattern!r}: write {shape}"
    else:
        server, sep, _ = pattern.partition(SEPARATOR)
        if not sep:
            return None if not _literal(pattern) else f"{pattern!r} cannot match anything: write {shape}"
    if _literal(server) and server not in servers:
        return f"{pattern!r}: no MCP server named {server!r} in mcp_servers"
    return None


def _renames(overrides: Mapping[str, ToolOverride]) -> dict[str, str]:
    return {tool: o.rename for tool, o in overrides.items() if o.rename is not None}


def _rename_problems(
    path: str, server: str, renames: Mapping[str, str], known: set[str], taken: Mapping[str, str]
) -> list[str]:
    """Renames (tool -> new name) of one server that take a name already in use.

    `path` is the overrides' config path: `mcp_servers.<server>.overrides` (keyed by tool) or
    `mcp_bundles.<bundle>.overrides` (keyed by `<server>__<tool>`). `known` holds the server's tools the config
    names (they exist, or will); `taken` maps names already given by renames in force (a server-level one, seen
    from a bundle) to their tool.
    """
    prefix = "" if path.startswith("mcp_servers.") else f"{server}{SEPARATOR}"
    problems: list[str] = []
    given: dict[str, str] = {}
    for tool, new in sorted(renames.items()):
        if new in known and new != tool:
            clash = f"the tool {server}{SEPARATOR}{new}"
        elif new in taken and taken[new] != tool:
            clash = f"{server}{SEPARATOR}{taken[new]}, renamed to it in mcp_servers.{server}.overrides"
        elif new in given:
            clash = f"{server}{SEPARATOR}{given[new]}, renamed to it here too"
        else:
            given[new] = tool
            continue
        problems.append(f"{path}.{prefix}{tool}.rename: {new!r} clashes with {clash}")
    return problems


def _server_problems(servers: Mapping[str, McpServerSettings]) -> list[str]:
    problems: list[str] = []
    for name, server in servers.items():
        path = f"mcp_servers.{name}.overrides"
        exposed = GlobSet.of(server.tools)
        problems.extend(
            f"{path}.{tool}: the server's tools globs {server.tools} do not expose {tool!r}"
            for tool in server.overrides
            if not exposed.matches(tool)
        )
        known = set(server.overrides) | {glob for glob in server.tools if _literal(glob)}
        problems.extend(_rename_problems(path, name, _renames(server.overrides), known, {}))
    return problems


def _split_tools(names: Iterable[str]) -> dict[str, set[str]]:
    """Literal `<server>__<tool>` names by server."""
    by_server: dict[str, set[str]] = {}
    for name in names:
        server, sep, tool = name.partition(SEPARATOR)
        if sep and tool and _literal(name):
            by_server.setdefault(server, set()).add(tool)
    return by_server


def _bundle_problems(name: str, bundle: McpBundleSettings, servers: Mapping[str, McpServerSettings]) -> list[str]:
    path = f"mcp_bundles.{name}"
    problems: list[str] = []
    if not BUNDLE_NAME.match(name):
        problems.append(f"{path}: bundle name {name!r} must be lowercase letters, digits and single '-'")
    if name in servers:
        problems.append(f"{path}: clashes with mcp_servers.{name}; a bundle and a server cannot share /mcp/{name}")
    for field in ("tools", "prompts", "resources"):
        for index, pattern in enumerate(getattr(bundle, field)):
            problem = _pattern_problem(pattern, servers, resource=field == "resources")
            if problem is not None:
                problems.append(f"{path}.{field}[{index}]: {problem}")
    selected = GlobSet.of(bundle.tools)
    overrides: dict[str, dict[str, ToolOverride]] = {}
    for key, override in bundle.overrides.items():
        server, sep, tool = key.partition(SEPARATOR)
        if not sep or not tool or not _literal(key):
            problems.append(f"{path}.overrides.{key}: name one tool as <server>__<tool> (no globs)")
        elif server not in servers:
            problems.append(f"{path}.overrides.{key}: no MCP server named {server!r} in mcp_servers")
        elif not selected.matches(key):
            problems.append(f"{path}.overrides.{key}: not one of this bundle's tools {bundle.tools}")
        elif not GlobSet.of(servers[server].tools).matches(tool):
            problems.append(f"{path}.overrides.{key}: mcp_servers.{server}.tools does not expose {tool!r}")
        else:
            overrides.setdefault(server, {})[tool] = override
    literal = _split_tools(bundle.tools)
    for server, tools in sorted(overrides.items()):
        upstream = servers[server]
        known = set(upstream.overrides) | {g for g in upstream.tools if _literal(g)} | set(tools)
        known |= literal.get(server, set())
        taken = {new: tool for tool, new in _renames(upstream.overrides).items()}
        problems.extend(_rename_problems(f"{path}.overrides", server, _renames(tools), known, taken))
    return problems


def bundle_problems(servers: Mapping[str, McpServerSettings], bundles: Mapping[str, McpBundleSettings]) -> list[str]:
    """Every problem of the tool overrides and bundles, each prefixed with its config path."""
    problems = _server_problems(servers)
    for name, bundle in bundles.items():
        problems.extend(_bundle_problems(name, bundle, servers))
    return problems
