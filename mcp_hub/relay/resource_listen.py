"""The hub's resource subscriptions to a 2026-07-28 upstream: one `subscriptions/listen` stream for all of them.

2026-07-28 has no `resources/subscribe`: a client names the URIs it wants in `resourceSubscriptions` when it opens
a listen stream, and the set is fixed for the stream's life. So whenever the set of URIs the hub's clients want from
this upstream changes, the hub opens a stream with the new set and, once the upstream acknowledged it, closes the
old one: the two overlap, so no update falls between them (one may come twice; updates are level triggers). An
empty set closes the stream. A stream the upstream ends is opened again after `RELISTEN_DELAY`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import mcp_types as types
from anyio.abc import TaskStatus
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated

logger = logging.getLogger(__name__)

RELISTEN_DELAY = 1.0
"""Seconds before a stream the upstream ended (while URIs are still wanted) is opened again."""


class ResourceListener:
    """Keeps one upstream listen stream subscribed to the wanted URIs; `run` is its life on one connection."""

    def __init__(self, server: str, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self._wanted: frozenset[str] = frozenset()
        self._generation = 0
        """Counts changes of `_wanted`; `_settled` is the last one the stream caught up with, and how."""
        self._settled: tuple[int, frozenset[str] | MCPError] = (0, frozenset())
        # Made on first use: the listener is built before any event loop runs.
        self._changed: anyio.Event | None = None
        self._progress: anyio.Event | None = None

    async def want(self, uris: frozenset[str]) -> frozenset[str]:
        """Listen to exactly `uris` from now on; returns those the upstream honored once its stream is open.

        Raises MCPError when the upstream refused the stream or did not acknowledge it within the timeout (the stream
        open before, if any, stays)."""
        generation, outcome = self._settled
        if uris == self._wanted and generation == self._generation and not isinstance(outcome, MCPError):
            return outcome  # the open stream is on exactly these
        self._wanted = uris
        self._generation += 1
        generation = self._generation
        if self._changed is not None:
            self._changed.set()
        try:
            with anyio.fail_after(self.timeout):
                while self._settled[0] < generation:
                    if self._progress is None:
                        self._progress = anyio.Event()
                    await self._progress.wait()
        except TimeoutError:
            raise MCPError(
                types.INTERNAL_ERROR, f"MCP server {self.server!r} did not acknowledge subscriptions/listen in time"
            ) from None
        outcome = self._settled[1]
        if isinstance(outcome, MCPError):
            raise outcome
        return outcome

    def wanted(self) -> frozenset[str]:
        return self._wanted

    async def run(self, client: Client, updated: Callable[[str], None]) -> None:
        """Follow the wanted set on `client` until cancelled (the connection's end)."""
        try:
            async with anyio.create_task_group() as tg:
                current: anyio.CancelScope | None = None
                while True:
                    changed = self._changed = anyio.Event()
                    generation, uris = self._generation, self._wanted
                    opened: anyio.CancelScope | None = None
                    outcome: frozenset[str] | MCPError = frozenset()
                    if uris:
                        try:
                            opened, outcome = await tg.start(self._stream, client, uris, updated)
                        except MCPError as exc:
                            outcome = exc
                        except Exception as exc:
                            outcome = MCPError(types.INTERNAL_ERROR, f"MCP server {self.server!r}: {exc}")
                    if opened is not None or not uris:
                        if current is not None:
                            current.cancel()
                        current = opened
                    self._settle(generation, outcome)
                    await changed.wait()
        finally:
            self._settle(self._generation, MCPError(types.INTERNAL_ERROR, f"MCP server {self.server!r} went away"))

    def _settle(self, generation: int, outcome: frozenset[str] | MCPError) -> None:
        self._settled = (generation, outcome)
        if self._progress is not None:
            self._progress.set()
            self._progress = None

    async def _stream(
        self,
        client: Client,
        uris: frozenset[str],
        updated: Callable[[str], None],
        *,
        task_status: TaskStatus[tuple[anyio.CancelScope, frozenset[str]]],
    ) -> None:
        started = False
        with anyio.CancelScope() as scope:
            try:
                async with client.listen(resource_subscriptions=sorted(uris)) as subscription:
                    honored = frozenset(subscription.honored.resource_subscriptions or ())
                    task_status.started((scope, honored))
                    started = True
                    async for event in subscription:
                        if isinstance(event, ResourceUpdated):
                            updated(event.uri)
            except Exception as exc:
                if not started:
                    raise  # `want` hears of it
                logger.info("MCP server %r: resource subscription stream ended (%s)", self.server, exc)
            await anyio.sleep(RELISTEN_DELAY)
            if self._changed is not None:
                self._changed.set()  # still wanted: open it again (a newer stream, if any, cancelled this one)
