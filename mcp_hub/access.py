"""Who is asking, through which endpoint: what a caller may see and call.

A tool is visible when every filter agrees (each can only narrow what the one before allowed):

1. the server is configured, enabled and live, and its server-level `tools` globs expose the tool (the catalog);
2. the endpoint: `/mcp` sees every server, `/mcp/<server>` one, `/mcp/<bundle>` what the bundle selects;
3. the key's allowlist (`mcp: {server: [tool globs]}`, deny by default): `toolpolicy.decide.tool_allowed`;
4. the client's `x-isthmus-tools` header, if sent: globs over `<server>__<tool>` (on `/mcp/<server>` the bare
   tool name matches too).

How a visible tool is offered is one more per-caller fact: directly, or through Code Mode's meta-tools when the
key's `code_mode` says so, or (the key saying nothing) its server's `code_mode` does.

Prompts and resources are not tools: a key sees those of every server its allowlist names (on `/mcp/<bundle>`,
those the bundle selects too).

Every filter names the real tool (`<server>__<upstream name>`): overrides only change what clients are shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from mcp_hub.bundles import Bundle
from mcp_hub.catalog import Catalog, Entry
from mcp_hub.naming import qualified
from toolpolicy.decide import tool_allowed
from toolpolicy.globs import GlobSet
from toolpolicy.types import Principal

NARROW_HEADER = "x-isthmus-tools"


def narrowing(headers: Mapping[str, str]) -> GlobSet | None:
    """The `x-isthmus-tools` globs, or None when the header is absent (an empty header narrows to nothing)."""
    raw = headers.get(NARROW_HEADER)
    if raw is None:
        return None
    return GlobSet.of(glob.strip() for glob in raw.split(",") if glob.strip())


class FoundTool:
    """The tool a caller's last lookup found usable (`listing.resolve_tool`), with the catalog index it came from.

    A 2026-07-28 call looks its tool up twice, in the same task: for its `Mcp-Param-*` headers' schema before
    dispatch, then in the pipeline. The second finds it here while the catalog's index is the same object (any
    catalog update makes a new one); the caller's own filters cannot change, as a `Caller` is frozen.
    """

    __slots__ = ("entry", "index", "name")

    def __init__(self) -> None:
        self.name: str | None = None
        self.index: object = None
        self.entry: Entry[types.Tool] | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """A resolved key plus the endpoint and header that narrow it."""

    principal: Principal
    secret: str = field(repr=False)
    """The presented key, kept in memory only so a long-lived session can re-check it for allowlist changes."""
    server: str | None = None
    """`/mcp/<server>`: only this server, with bare names. None: `/mcp`, every server, qualified names."""
    narrow: GlobSet | None = None
    code_mode_servers: frozenset[str] = frozenset()
    """The servers configured with `code_mode: true` (the key's own `code_mode` overrides them)."""
    bundle: Bundle | None = None
    """`/mcp/<bundle>`: only what the bundle selects, qualified names as on `/mcp` (`server` is then None)."""
    found: FoundTool = field(default_factory=FoundTool, init=False, compare=False, repr=False)
    """What the last tool lookup found (see `FoundTool`): not part of who the caller is."""

    @property
    def endpoint(self) -> str:
        """The path segment after `/mcp/` (a server or bundle name), or `*` for `/mcp`."""
        return self.bundle.name if self.bundle is not None else self.server or "*"

    def in_code_mode(self, server: str) -> bool:
        """Whether this caller uses `server`'s tools through Code Mode rather than directly."""
        mode = self.principal.code_mode
        return mode if mode is not None else server in self.code_mode_servers

    def sees_server(self, server: str) -> bool:
        return (self.server is None or self.server == server) and server in self.principal.mcp

    def may_use(self, server: str, tool: str) -> bool:
        """Whether this caller may list and call `tool` of `server` (the catalog decides whether it exists)."""
        if not self.sees_server(server) or not tool_allowed(self.principal, server, tool):
            return False
        if self.bundle is not None and not self.bundle.has_tool(server, tool):
            return False
        if self.narrow is None:
            return True
        return self.narrow.matches(qualified(server, tool)) or (self.server is not None and self.narrow.matches(tool))

    def sees_prompt(self, server: str, prompt: str) -> bool:
        return self.sees_server(server) and (self.bundle is None or self.bundle.has_prompt(server, prompt))

    def sees_resource(self, server: str, resource: types.Resource) -> bool:
        return self.sees_server(server) and (self.bundle is None or self.bundle.has_resource(server, resource))

    def sees_template(self, server: str, template: types.ResourceTemplate) -> bool:
        return self.sees_server(server) and (self.bundle is None or self.bundle.has_template(server, template))

    def sees_uri(self, catalog: Catalog, server: str, uri: str) -> bool:
        """Whether this caller may read (or complete) `uri` of `server`."""
        return self.sees_server(server) and (self.bundle is None or self.bundle.allows_uri(catalog, server, uri))

    def name_of(self, entry: Entry[Any]) -> str:
        """The name this caller knows an entry by."""
        return entry.alias if self.server is not None else entry.exposed

    def same_grants(self, other: Principal) -> bool:
        """Whether `other` (a fresh resolution of the same key) grants, and offers, exactly what this one did."""
        mine = self.principal
        return other.mcp == mine.mcp and other.expires_at == mine.expires_at and other.code_mode == mine.code_mode
