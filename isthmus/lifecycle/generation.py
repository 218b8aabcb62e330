"""A generation: the governance, components and routes built from one configuration, and its requests in flight.

A reload builds a new generation and installs it; requests that started on the old one finish there (their
endpoints are the old components'), and the old generation's components stop once its last request ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.routing import BaseRoute

from isthmus.component import Component
from toolpolicy.runtime import Governance


class Generation:
    """What one configuration serves; `active` counts the HTTP requests it is handling."""

    __slots__ = ("governance", "components", "routes", "active", "_idle")

    def __init__(self, governance: Governance, components: Sequence[Component], routes: Sequence[BaseRoute]) -> None:
        self.governance = governance
        self.components = list(components)
        self.routes = list(routes)
        self.active = 0
        self._idle: asyncio.Event | None = None

    def leave(self) -> None:
        """One request ended (the caller counted it in with `active += 1`)."""
        self.active -= 1
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    async def idle(self, timeout: float) -> bool:
        """Wait until no request is in flight here, at most `timeout` seconds; True if none is."""
        if self.active == 0:
            return True
        self._idle = self._idle or asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
