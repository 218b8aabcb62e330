"""Bundles at run time: what `/mcp/<bundle>` selects, and its tools under the names it gives them.

A bundle is an endpoint like `/mcp`, narrowed: the same `<server>__<tool>` names, the same per-key filtering, and
only what its patterns select. Its own overrides apply over the server-level ones (which the catalog applied
already); its tool index is rebuilt when the catalog's tools change.
"""

from __future__ import annotations

from collections.abc import Mapping

import mcp_types as types

from mcp_hub.catalog import Catalog, Entry, place
from mcp_hub.naming import hub_uri, qualified, server_of
from mcp_hub.overrides import aliases, overridden
from toolpolicy.bundles import McpBundleSettings
from toolpolicy.globs import GlobSet
from toolpolicy.tool_overrides import ToolOverride


class Bundle:
    """One configured bundle (`mcp_bundles.<name>`)."""

    def __init__(self, name: str, settings: McpBundleSettings) -> None:
        self.name = name
        self.settings = settings
        self._tools = GlobSet.of(settings.tools)
        self._prompts = GlobSet.of(settings.prompts)
        self._resources = GlobSet.of(settings.resources)
        self.overrides: dict[str, dict[str, ToolOverride]] = {}
        """The bundle's overrides by server, then by upstream tool name."""
        for key, override in settings.overrides.items():
            server = server_of(key)
            if server is not None:
                self.overrides.setdefault(server, {})[key[len(server) + 2 :]] = override
        self._version: int | None = None
        self._index: dict[str, Entry[types.Tool]] = {}

    def has_tool(self, server: str, tool: str) -> bool:
        """Whether the bundle selects `tool` (the upstream's name) of `server`."""
        return self._tools.matches(qualified(server, tool))

    def has_prompt(self, server: str, prompt: str) -> bool:
        return self._prompts.matches(qualified(server, prompt))

    def has_resource(self, server: str, resource: types.Resource) -> bool:
        return self._resources.matches(hub_uri(server, resource.uri)) or self._resources.matches(
            qualified(server, resource.name)
        )

    def has_template(self, server: str, template: types.ResourceTemplate) -> bool:
        return self._resources.matches(hub_uri(server, template.uri_template)) or self._resources.matches(
            qualified(server, template.name)
        )

    def allows_uri(self, catalog: Catalog, server: str, uri: str) -> bool:
        """Whether a read (or completion) of `uri` at `server` is within the bundle: its `/mcp` URI matches, or it
        is a selected resource, or it matches a selected template."""
        if self._resources.matches(hub_uri(server, uri)):
            return True
        resource = catalog.resource_at(server, uri)
        if resource is not None and self.has_resource(server, resource):
            return True
        return any(self.has_template(server, t) for t in catalog.templates_matching(server, uri))

    def index(self, catalog: Catalog) -> Mapping[str, Entry[types.Tool]]:
        """The bundle's tools by the names it shows, live or remembered from a server that is down."""
        if self._version != catalog.version:
            self._index = self._build(catalog)
            self._version = catalog.version
        return self._index

    def tools(self, catalog: Catalog) -> list[Entry[types.Tool]]:
        """The bundle's live tools, in order."""
        return [entry for entry in self.index(catalog).values() if catalog.is_live(entry.server)]

    def _build(self, catalog: Catalog) -> dict[str, Entry[types.Tool]]:
        every = catalog.all_tools()
        entries: dict[str, Entry[types.Tool]] = {}
        for server in sorted({entry.server for entry in every}):
            mine = self.overrides.get(server, {})
            renames = {name: o.rename for name, o in mine.items() if o.rename is not None}
            # A bundle's rename may not take a name any tool of the server has, in the bundle or not.
            shown = {entry.name: entry.alias for entry in every if entry.server == server}
            names = aliases(server, shown, renames, f"mcp_bundles.{self.name}.overrides")
            selected = [entry for entry in every if entry.server == server and self.has_tool(server, entry.name)]
            named = ((e.name, names[e.name], overridden(e.item, mine.get(e.name))) for e in selected)
            place(server, named, entries)
        return entries

    def describe(self, catalog: Catalog) -> dict[str, object]:
        """The bundle for the admin API: its config and the live tools it serves now (before any key's allowlist)."""
        settings = self.settings
        return {
            "name": self.name,
            "path": f"/mcp/{self.name}",
            "description": settings.description,
            "tool_patterns": list(settings.tools),
            "prompt_patterns": list(settings.prompts),
            "resource_patterns": list(settings.resources),
            "overrides": {key: override.as_config() for key, override in settings.overrides.items()},
            "tools": [
                {"name": entry.exposed, "server": entry.server, "tool": entry.name} for entry in self.tools(catalog)
            ],
        }


def build_bundles(settings: Mapping[str, McpBundleSettings]) -> dict[str, Bundle]:
    return {name: Bundle(name, bundle) for name, bundle in settings.items()}
