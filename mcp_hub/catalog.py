"""The aggregated catalog: every upstream's tools, prompts, resources and templates, named for `/mcp`.

Upstreams hand in a `Snapshot` when they (re)connect or re-list, and None when they go down. A down server's
items leave the listings, but its names stay known, so a call to one of them can say which server is down instead
of pretending the tool never existed. Order is deterministic: by server name (config order does not matter), then
by the upstream's own name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import mcp_types as types
from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from mcp_hub.naming import exposed_name
from mcp_hub.overrides import aliases, overridden
from toolpolicy.tool_overrides import ToolOverride

logger = logging.getLogger(__name__)

Kind = Literal["tools", "prompts", "resources"]
ALL_KINDS: frozenset[Kind] = frozenset({"tools", "prompts", "resources"})

ItemT = TypeVar("ItemT", types.Tool, types.Prompt)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one upstream lists, after its server-level `tools` filter."""

    tools: tuple[types.Tool, ...] = ()
    prompts: tuple[types.Prompt, ...] = ()
    resources: tuple[types.Resource, ...] = ()
    templates: tuple[types.ResourceTemplate, ...] = ()

    def changed_kinds(self, other: Snapshot | None) -> frozenset[Kind]:
        """The kinds of list that differ between the two snapshots (None counts as empty)."""
        other = other or Snapshot()
        kinds: set[Kind] = set()
        if self.tools != other.tools:
            kinds.add("tools")
        if self.prompts != other.prompts:
            kinds.add("prompts")
        if self.resources != other.resources or self.templates != other.templates:
            kinds.add("resources")
        return frozenset(kinds)


ServerOverrides = Mapping[str, Mapping[str, ToolOverride]]
"""Tool overrides by server, then by the upstream's tool name."""


@dataclass(frozen=True, slots=True)
class Entry(Generic[ItemT]):
    """A tool or prompt of one server, with the names it has on the hub's endpoints."""

    server: str
    name: str
    """The upstream's own name: what calls upstream, allowlists, rate limits and audit records use."""
    exposed: str
    """The name on `/mcp` (and `/mcp/<bundle>`): `<server>__<alias>`, shortened when needed."""
    item: ItemT
    """What the upstream listed, with the description and annotations of any override (and the upstream's name)."""
    alias: str
    """The name within its server (what `/mcp/<server>` shows): the override's `rename`, else the upstream's name."""


def place(server: str, named: Iterable[tuple[str, str, ItemT]], entries: dict[str, Entry[ItemT]]) -> None:
    """Add one server's `(upstream name, alias, item)`s to `entries` under their exposed names, by alias."""
    for name, alias, item in sorted(named, key=lambda named: (named[1], named[0])):
        salt = 0
        exposed = exposed_name(server, alias)
        while exposed in entries:
            # Two names that shorten alike: the later one (in the fixed order) takes another hash.
            salt += 1
            exposed = exposed_name(server, alias, salt=salt)
        if salt:
            logger.warning("MCP server %r: %r is exposed as %r (name collision)", server, alias, exposed)
        entries[exposed] = Entry(server, name, exposed, item, alias)


def _index(snapshots: Mapping[str, Iterable[ItemT]]) -> dict[str, Entry[ItemT]]:
    entries: dict[str, Entry[ItemT]] = {}
    for server in sorted(snapshots):
        place(server, ((item.name, item.name, item) for item in snapshots[server]), entries)
    return entries


def _tool_index(
    snapshots: Mapping[str, Iterable[types.Tool]], overrides: ServerOverrides
) -> dict[str, Entry[types.Tool]]:
    entries: dict[str, Entry[types.Tool]] = {}
    for server in sorted(snapshots):
        tools = list(snapshots[server])
        mine = overrides.get(server, {})
        renames = {name: o.rename for name, o in mine.items() if o.rename is not None}
        shown = aliases(server, {t.name: t.name for t in tools}, renames, f"mcp_servers.{server}.overrides")
        place(server, ((t.name, shown[t.name], overridden(t, mine.get(t.name))) for t in tools), entries)
    return entries


class Catalog:
    """Every upstream's listings; rebuilt (cheaply) whenever one upstream's snapshot changes.

    Server-level tool overrides are applied here, so every endpoint and Code Mode see them.
    """

    def __init__(self, overrides: ServerOverrides | None = None) -> None:
        self.overrides: ServerOverrides = overrides or {}
        self._known: dict[str, Snapshot] = {}
        self._live: set[str] = set()
        self._tools: dict[str, Entry[types.Tool]] = {}
        self._prompts: dict[str, Entry[types.Prompt]] = {}
        self._templates: dict[str, list[tuple[UriTemplate, types.ResourceTemplate]]] = {}
        self.version = 0
        """Goes up whenever the live tools change, so what is derived from them can be cached against it."""

    def update(self, server: str, snapshot: Snapshot | None) -> frozenset[Kind]:
        """Install a server's snapshot (None: the server is down). Returns the kinds of list that changed."""
        before = self._known.get(server) if server in self._live else None
        if snapshot is None:
            self._live.discard(server)
        else:
            self._known[server] = snapshot
            self._live.add(server)
        self._tools = _tool_index({name: snap.tools for name, snap in self._known.items()}, self.overrides)
        self._prompts = _index({name: snap.prompts for name, snap in self._known.items()})
        self._templates[server] = _compile(server, snapshot.templates if snapshot else ())
        kinds = (snapshot or Snapshot()).changed_kinds(before)
        if "tools" in kinds:
            self.version += 1
        return kinds

    @property
    def tool_index(self) -> object:
        """What every tool lookup reads (a bundle's index is rebuilt from it): a new object after any update."""
        return self._tools

    def is_live(self, server: str) -> bool:
        return server in self._live

    def tools(self) -> list[Entry[types.Tool]]:
        """Every live server's tools, in order."""
        return [entry for entry in self._tools.values() if entry.server in self._live]

    def tool(self, exposed: str) -> Entry[types.Tool] | None:
        """A tool by its `/mcp` name, live or remembered from a server that is down."""
        return self._tools.get(exposed)

    def tool_named(self, server: str, alias: str) -> Entry[types.Tool] | None:
        """A tool by server and the name it has there (`/mcp/<server>`), live or remembered."""
        return next((e for e in self._tools.values() if e.server == server and e.alias == alias), None)

    def all_tools(self) -> list[Entry[types.Tool]]:
        """Every tool, live or remembered from a server that is down, in order."""
        return list(self._tools.values())

    def prompts(self) -> list[Entry[types.Prompt]]:
        return [entry for entry in self._prompts.values() if entry.server in self._live]

    def prompt(self, exposed: str) -> Entry[types.Prompt] | None:
        return self._prompts.get(exposed)

    def prompt_of(self, server: str, name: str) -> Entry[types.Prompt] | None:
        return next((e for e in self._prompts.values() if e.server == server and e.name == name), None)

    def resources(self) -> list[tuple[str, types.Resource]]:
        return [
            (server, resource)
            for server in sorted(self._live)
            for resource in sorted(self._known[server].resources, key=lambda r: r.uri)
        ]

    def templates(self) -> list[tuple[str, types.ResourceTemplate]]:
        return [
            (server, template)
            for server in sorted(self._live)
            for template in sorted(self._known[server].templates, key=lambda t: t.uri_template)
        ]

    def resource_at(self, server: str, uri: str) -> types.Resource | None:
        """The resource `server` lists at `uri`, if it is live and does."""
        known = self._known.get(server) if server in self._live else None
        return next((r for r in known.resources if r.uri == uri), None) if known else None

    def templates_matching(self, server: str, uri: str) -> list[types.ResourceTemplate]:
        """The URI templates of `server` that `uri` matches."""
        if server not in self._live:
            return []
        return [template for compiled, template in self._templates.get(server, []) if compiled.match(uri)]

    def owner_of(self, uri: str, servers: Iterable[str]) -> str | None:
        """The one server among `servers` that lists `uri` or has a template matching it (None if none or several).

        For URIs that reach `/mcp` without the `isthmus://` prefix, e.g. from a tool result's resource link.
        """
        candidates = [s for s in servers if s in self._live and any(r.uri == uri for r in self._known[s].resources)]
        if not candidates:
            candidates = [
                s for s in servers if s in self._live and any(t.match(uri) for t, _ in self._templates.get(s, []))
            ]
        return candidates[0] if len(candidates) == 1 else None


def _compile(
    server: str, templates: Iterable[types.ResourceTemplate]
) -> list[tuple[UriTemplate, types.ResourceTemplate]]:
    compiled: list[tuple[UriTemplate, types.ResourceTemplate]] = []
    for template in templates:
        try:
            compiled.append((UriTemplate.parse(template.uri_template), template))
        except InvalidUriTemplate as exc:
            logger.warning("MCP server %r lists an invalid URI template %r: %s", server, template.uri_template, exc)
    return compiled
