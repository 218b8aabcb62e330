"""Which routes may become Prometheus label values.

A label value is a time series for as long as the process lives, so only names the operator chose may become one:
configured providers with their configured, priced or aliased models, and the tools of configured MCP servers.
Every other name a caller (or an upstream) comes up with is counted under `other`.
"""

from __future__ import annotations

from collections.abc import Iterable

from toolpolicy.pricing import shipped_prices
from toolpolicy.settings import GatewaySettings

OTHER = "other"
"""The label value of every route not known from the configuration."""
NO_ROUTE = "-"
"""The label value of a request that reached no route (refused, or not a model or tool call)."""
MAX_TOOL_LABELS = 2000
"""Distinct tools labelled at most: upstreams name their own tools, so even those of configured servers are capped."""
TOOL_KIND = "tool_call"


def _exact(names: Iterable[str]) -> set[str]:
    return {name for name in names if not any(char in name for char in "*?[")}


class RouteLabels:
    """Maps the route of a finished request (`provider/model` or `server/tool`) to a bounded label value."""

    def __init__(self, settings: GatewaySettings | None = None) -> None:
        settings = settings or GatewaySettings()
        # A model priced by name (shipped table or `pricing:`), under any configured provider: the price table
        # finds it by `provider/model`, `kind/model` or the bare model name, so any of these counts as priced.
        priced = {name.partition("/")[2] or name for name in _exact([*shipped_prices(), *settings.pricing])}
        self.models: dict[str, frozenset[str]] = {
            name: frozenset(priced | set(provider.models)) for name, provider in settings.providers.items()
        }
        for alias in settings.models.values():
            for target in alias.targets:
                provider, _, model = target.partition("/")
                self.models[provider] = self.models.get(provider, frozenset()) | {model}
        self.servers = frozenset(settings.mcp_servers)
        self.tools: set[str] = set()

    def route(self, kind: str, route: str | None) -> str:
        """`route` itself when the configuration knows it, `<provider or server>/other` when it knows only the
        provider or server, else `other`."""
        if not route:
            return NO_ROUTE
        owner, _, name = route.partition("/")
        if kind == TOOL_KIND:
            if owner not in self.servers or not name:
                return OTHER
            if route in self.tools:
                return route
            if len(self.tools) < MAX_TOOL_LABELS:
                self.tools.add(route)
                return route
            return f"{owner}/{OTHER}"
        models = self.models.get(owner)
        if models is None:
            return OTHER
        return route if name in models else f"{owner}/{OTHER}"
