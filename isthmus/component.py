"""What each half of the gateway plugs into the app: its routes, its life cycle and its readiness."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.routing import BaseRoute


class Component(Protocol):
    """A part of the gateway served from the one Starlette app (the LLM proxy, the MCP hub)."""

    name: str

    def routes(self) -> list[BaseRoute]:
        """Routes to mount on the app, before the admin API."""
        ...

    async def start(self) -> None:
        """Open long-lived resources (pooled clients, upstream connections) after the governance core started."""
        ...

    async def stop(self) -> None:
        """Close them, before the governance core stops (so their last audit records are flushed)."""
        ...

    def readiness(self) -> dict[str, Any]:
        """A JSON summary for `/ready`; a `"status": "down"` entry makes the gateway not ready."""
        ...
