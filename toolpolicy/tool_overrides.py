"""Tool overrides: what the operator says a tool is called and does, in front of what its upstream says.

A tool's name, description and annotations are prompt surface: the model reads them to decide what to call. An
override replaces them where clients see them (listings, Code Mode's search and docs) and nowhere else: a call to a
renamed tool reaches the upstream tool by its own name, and allowlists, rate limits, budgets and audit records keep
naming the real server and tool.

Overrides sit under a server (`mcp_servers.<server>.overrides`, keyed by the upstream's tool name, applied on every
endpoint) and under a bundle (`mcp_bundles.<bundle>.overrides`, keyed by `<server>__<tool>`, applied on
`/mcp/<bundle>` only, field by field over the server's).
"""

from __future__ import annotations

import re

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
"""The characters and length MCP asks tool names to keep to."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class ToolAnnotationsOverride(_Model):
    """MCP tool annotations to set; each one given replaces the upstream's, the others are kept.

    Written as on the wire (`readOnlyHint`) or in snake case (`read_only_hint`).
    """

    title: str | None = None
    """A human-readable title for the tool."""
    read_only_hint: bool | None = Field(default=None, validation_alias=AliasChoices("readOnlyHint", "read_only_hint"))
    """The tool does not modify its environment."""
    destructive_hint: bool | None = Field(
        default=None, validation_alias=AliasChoices("destructiveHint", "destructive_hint")
    )
    """The tool may perform destructive updates (meaningful only when not read-only)."""
    idempotent_hint: bool | None = Field(
        default=None, validation_alias=AliasChoices("idempotentHint", "idempotent_hint")
    )
    """Calling the tool again with the same arguments has no further effect."""
    open_world_hint: bool | None = Field(
        default=None, validation_alias=AliasChoices("openWorldHint", "open_world_hint")
    )
    """The tool interacts with an open world of external entities (a web search does, a local calculator not)."""

    def as_wire(self) -> dict[str, object]:
        """The annotations given, by their MCP wire names (for the admin API)."""
        given = {"title": self.title, **{wire: getattr(self, field) for wire, field in _WIRE_NAMES.items()}}
        return {name: value for name, value in given.items() if value is not None}


_WIRE_NAMES = {
    "readOnlyHint": "read_only_hint",
    "destructiveHint": "destructive_hint",
    "idempotentHint": "idempotent_hint",
    "openWorldHint": "open_world_hint",
}


class ToolOverride(_Model):
    """What clients are told about one tool instead of what its upstream lists."""

    rename: str | None = None
    """The tool's name instead of the upstream's (`[A-Za-z0-9_.-]`, at most 128 characters). It takes the place of
    the upstream name: `<server>__<rename>` on `/mcp` and `/mcp/<bundle>`, `<rename>` on `/mcp/<server>`, and the
    function name in Code Mode. It may not be the name of another tool of the same server."""
    title: str | None = None
    """The tool's display title instead of the upstream's."""
    description: str | None = None
    """The tool's description instead of the upstream's: what the model reads to decide when to call it."""
    annotations: ToolAnnotationsOverride | None = None
    """Annotations to set (`readOnlyHint`, `destructiveHint`, `idempotentHint`, `openWorldHint`, `title`); the
    upstream's other annotations are kept."""

    @field_validator("rename")
    @classmethod
    def _rename(cls, value: str | None) -> str | None:
        if value is not None and not TOOL_NAME.match(value):
            raise ValueError(f"{value!r} is not a tool name: use 1-128 letters, digits, '_', '.' or '-'")
        return value

    def as_config(self) -> dict[str, object]:
        """The override as written in the config, without the fields left out (for the admin API)."""
        shown: dict[str, object] = {
            field: value for field in ("rename", "title", "description") if (value := getattr(self, field)) is not None
        }
        if self.annotations is not None:
            shown["annotations"] = self.annotations.as_wire()
        return shown
