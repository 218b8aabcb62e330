"""Each caller's Code Mode tools as a `Toolbox`, kept between requests.

A Toolbox (Python names, stubs, search index) costs milliseconds to build for hundreds of tools, and every meta-tool
call and listing needs one, so it is cached per everything that decides its contents: the key, its allowlist and
`code_mode`, the endpoint (server or bundle), the `x-isthmus-tools` header, and the catalog's version (the cache
empties when the catalog's tools change).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog
from mcp_hub.codemode import Toolbox, ToolSpec
from mcp_hub.listing import code_mode_tools

MAX_TOOLBOXES = 1024
"""Distinct (key, allowlist, endpoint, header) combinations kept; the least recently used go first."""


def _grants(caller: Caller) -> Hashable:
    principal = caller.principal
    allowlist = tuple(sorted((server, globs.patterns) for server, globs in principal.mcp.items()))
    narrow = caller.narrow.patterns if caller.narrow is not None else None
    return principal.key_id, allowlist, principal.code_mode, caller.endpoint, narrow


class ToolboxCache:
    def __init__(self, catalog: Catalog, size: int = MAX_TOOLBOXES) -> None:
        self.catalog = catalog
        self.size = size
        self._version = catalog.version
        self._toolboxes: OrderedDict[Hashable, Toolbox] = OrderedDict()
        self.built = 0
        """Toolboxes built so far (a cache miss each)."""

    def __len__(self) -> int:
        return len(self._toolboxes)

    def get(self, caller: Caller) -> Toolbox:
        """The tools `caller` may use through Code Mode, bound to Python names (empty when it has none)."""
        if self.catalog.version != self._version:
            self._toolboxes.clear()
            self._version = self.catalog.version
        key = _grants(caller)
        toolbox = self._toolboxes.get(key)
        if toolbox is not None:
            self._toolboxes.move_to_end(key)
            return toolbox
        entries = code_mode_tools(caller, self.catalog)
        # Programs call tools by the names (and read the descriptions) the endpoint shows, overrides included.
        toolbox = Toolbox(
            ToolSpec.from_tool(entry.server, entry.item.model_copy(update={"name": entry.alias})) for entry in entries
        )
        self.built += 1
        self._toolboxes[key] = toolbox
        if len(self._toolboxes) > self.size:
            self._toolboxes.popitem(last=False)
        return toolbox
