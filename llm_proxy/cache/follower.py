"""The loop every shared tier's follower runs: listen, load what changed while not listening, apply announcements;
on losing the connection, try again after a delay. Subclasses say how to listen (`listen`) and which errors mean
the connection was lost (`errors`)."""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod

from llm_proxy.cache.tiers import Local

logger = logging.getLogger(__name__)

START_WAIT = 10.0
"""Seconds a starting replica waits at most for its first subscription and load."""


class Follower(ABC):
    what = "the shared tier"
    errors: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, local: Local, reconnect_delay: float) -> None:
        self.local = local
        self.reconnect_delay = reconnect_delay
        self.listening = asyncio.Event()
        """Set while listening with the load done."""
        self._first_try = asyncio.Event()
        """Set once the first attempt has loaded or failed: start-up waits for that, no longer."""

    def heard(self) -> None:
        """`listen` calls this once subscribed and loaded."""
        self.listening.set()
        self._first_try.set()

    async def started(self) -> None:
        try:
            await asyncio.wait_for(self._first_try.wait(), START_WAIT)
        except TimeoutError:
            logger.warning("the cache did not reach %s within %.0fs; it goes on trying", self.what, START_WAIT)

    async def run(self) -> None:
        while True:
            try:
                await self.listen()
            except self.errors as exc:
                logger.warning(
                    "lost %s for the cache's changes (%s); retrying in %.1fs", self.what, exc, self.reconnect_delay
                )
            except Exception:
                logger.exception("following %s for the cache's changes failed; retrying", self.what)
            finally:
                self.listening.clear()
                self._first_try.set()
            await asyncio.sleep(self.reconnect_delay)

    @abstractmethod
    async def listen(self) -> None:
        """Subscribe, load what changed while not listening, call `heard`, then apply announcements until the
        connection is lost."""

    @abstractmethod
    async def stored(self, payload: str) -> None:
        """Another replica stored an entry (`payload`: the entry or its key, as the tier announces it)."""

    async def apply(self, announcement: bytes | str, origin: str) -> None:
        """Apply another replica's `<origin> <change> <payload>`: `put`, `discard <entry key>` or
        `delete {"key_name": …, "model": …}`; this replica's own (`origin`) are skipped."""
        try:
            sender, change, payload = text_of(announcement).split(" ", 2)
            if sender == origin:
                return
            if change == "put":
                await self.stored(payload)
            elif change == "discard":
                self.local.forget(payload)
            elif change == "delete":
                filters = json.loads(payload)
                self.local.forget_matching(filters["key_name"], filters["model"])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed cache announcement from %s: %.200r", self.what, announcement)


def text_of(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
