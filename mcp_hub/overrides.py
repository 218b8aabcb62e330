"""Tool overrides at run time: the name, description and annotations clients see (`toolpolicy.tool_overrides`).

The config check refuses renames that clash with tools the config names; an upstream may still list a tool of the
name later. Then the upstream's tool keeps its name, the renamed tool keeps its own (the rename is dropped, with a
warning naming both): neither tool silently shadows the other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import mcp_types as types

from mcp_hub.naming import qualified
from toolpolicy.tool_overrides import ToolOverride

logger = logging.getLogger(__name__)


def overridden(tool: types.Tool, override: ToolOverride | None) -> types.Tool:
    """`tool` with the override's title, description and annotations in place of the upstream's (name unchanged)."""
    if override is None:
        return tool
    update: dict[str, object] = {}
    if override.title is not None:
        update["title"] = override.title
    if override.description is not None:
        update["description"] = override.description
    if override.annotations is not None:
        upstream = tool.annotations.model_dump(exclude_none=True) if tool.annotations is not None else {}
        update["annotations"] = types.ToolAnnotations(
            **{**upstream, **override.annotations.model_dump(exclude_none=True)}
        )
    return tool.model_copy(update=update) if update else tool


def aliases(server: str, shown: Mapping[str, str], renames: Mapping[str, str], scope: str) -> dict[str, str]:
    """The name each tool of `server` goes by: `shown` (upstream name -> name so far) with `renames` applied.

    A rename may not take any upstream name of the server, nor a name another tool has so far: such a rename is
    dropped (the tool keeps its name so far, which no rename can have taken).
    `scope` says where the renames come from, for the warning.
    """
    taken = set(shown) | set(shown.values())
    result = dict(shown)
    for name in sorted(renames):
        new = renames[name]
        if name not in shown or new == shown[name]:
            continue
        if new in taken and new != name:
            logger.warning(
                "%s: %s is not renamed to %r, which another tool of MCP server %r has",
                scope,
                qualified(server, name),
                new,
                server,
            )
            continue
        taken.add(new)
        result[name] = new
    return result
