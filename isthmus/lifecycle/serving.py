"""`Lifecycle`: which generation an app serves, the ones retiring after a reload, and whether the replica drains."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Protocol

from isthmus.lifecycle.bounded import settle
from isthmus.lifecycle.generation import Generation
from toolpolicy.server_settings import ServerSettings

logger = logging.getLogger(__name__)


class Installer(Protocol):
    """The app side of a swap: point state and routes at a generation, in one synchronous step."""

    def install(self, generation: Generation) -> None: ...


class Lifecycle:
    """One app's life cycle. `draining` is set by SIGTERM (or `begin_drain`) and never cleared: `/ready` answers
    503 from then on, so load balancers take the replica out while its in-flight requests finish."""

    def __init__(self, app: Installer, generation: Generation, server: ServerSettings) -> None:
        self.app = app
        self.current = generation
        self.server = server
        self.draining = False
        self.abandoned = False
        """A shutdown step did not finish within `server.stop_timeout`."""
        self._retiring: set[asyncio.Task[None]] = set()
        self._unstopped: list[Generation] = [generation]

    def begin_drain(self) -> None:
        """Signal-handler safe: only flags the replica (the server stops accepting on its own)."""
        if not self.draining:
            self.draining = True
            logger.info("draining: /ready answers 503; in-flight requests get up to %gs", self.server.drain_timeout)

    def install(self, generation: Generation) -> None:
        """Serve `generation` from now on; the previous one stops once its requests finished (or drain_timeout)."""
        old, self.current = self.current, generation
        self.app.install(generation)
        self._unstopped.append(generation)
        task = asyncio.get_running_loop().create_task(self._retire(old), name="isthmus-retire-generation")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, old: Generation) -> None:
        if not await old.idle(self.server.drain_timeout):
            logger.warning(
                "reload: %d requests still on the old configuration after %gs; stopping it anyway",
                old.active,
                self.server.drain_timeout,
            )
        await asyncio.shield(self.stop_components(old))

    async def stop_components(self, generation: Generation) -> None:
        """Stop a generation's components in reverse order, each bounded by `stop_timeout`; once per generation."""
        if generation not in self._unstopped:
            return
        self._unstopped.remove(generation)
        for part in reversed(generation.components):
            if not await settle(f"stopping {part.name}", part.stop(), self.server.stop_timeout):
                self.abandoned = True

    async def stop(self) -> None:
        """At lifespan shutdown (the drain is over): every generation not stopped yet, the current one last."""
        for task in self._retiring:
            task.cancel()  # one still waiting for its requests stops waiting; one stopping goes on, shielded
        for generation in list(self._unstopped):
            await self.stop_components(generation)

    def exit_if_stuck(self) -> None:
        """After a step was abandoned, make sure the process still exits: its task may shield itself from the
        event loop's final cancellation, which would otherwise wait for it forever."""
        if self.abandoned:
            timer = threading.Timer(self.server.stop_timeout, _exit_now)
            timer.daemon = True
            timer.start()


def _exit_now() -> None:
    logger.error("shutdown: abandoned steps still hold the process; exiting now")
    logging.shutdown()
    os._exit(1)
