"""Configuration reload without restart (SIGHUP, `POST /admin/reload`): validated first, applied whole or not at all.

The steps, in order, and why:
1. Read and validate the file completely (`load`): a bad file changes nothing and the error names the problem.
2. Settings the process opened once (`Governance.RESTART_REQUIRED`: listen address, store, Redis, writers, tracing,
   HTTP server) keep their running values; the outcome names each one changed as "restart required".
3. Build the new generation (governance view, components, routes) and start its components: constructing and
   starting them is the rest of the validation (a provider or upstream that cannot be built fails here). A failure
   stops what was started and changes nothing.
4. Seed the config's customers, teams and keys (one store transaction), then install the generation in one
   synchronous step. Requests in flight finish on the old generation, which stops when they have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from isthmus.lifecycle.bounded import settle
from isthmus.lifecycle.generation import Generation
from isthmus.lifecycle.serving import Lifecycle
from toolpolicy.config import ConfigError
from toolpolicy.errors import InvalidRequest
from toolpolicy.runtime import Governance
from toolpolicy.settings import CACHE_SUFFIX, GatewaySettings

logger = logging.getLogger(__name__)

Load = Callable[[], GatewaySettings]
"""Reads and validates the configuration file (raising `ConfigError`); the CLI's: the environment stays at the edge."""
Build = Callable[[Governance], Generation]
"""The components and routes for a governance (`isthmus.app`)."""


class ReloadRefused(InvalidRequest):
    """The new configuration cannot be applied; nothing was changed."""


class Reloader:
    """Applies a re-read configuration to a running app, one reload at a time."""

    def __init__(self, lifecycle: Lifecycle, load: Load | None, build: Build) -> None:
        self.lifecycle = lifecycle
        self.load = load
        self.build = build
        self._lock = asyncio.Lock()

    async def reload(self) -> dict[str, Any]:
        """Re-read, validate and apply the configuration; raises `ReloadRefused` (nothing applied) on any problem."""
        if self.lifecycle.draining:
            raise ReloadRefused("this replica is shutting down: reload refused")
        if self.load is None:
            raise ReloadRefused("this gateway was started without a config file: there is nothing to reload")
        async with self._lock:
            try:
                settings = self.load()
            except ConfigError as exc:
                raise ReloadRefused(f"config not reloaded, nothing changed: {exc}") from None
            return await self._apply(settings)

    async def _apply(self, settings: GatewaySettings) -> dict[str, Any]:
        old = self.lifecycle.current.governance
        restart = [
            name for name in Governance.RESTART_REQUIRED if getattr(settings, name) != getattr(old.settings, name)
        ]
        effective = settings.model_copy(update={name: getattr(old.settings, name) for name in restart})
        effective = _cache_prefix_follows_running_redis_prefix(effective, settings)
        changed = [
            name for name in type(settings).model_fields if getattr(effective, name) != getattr(old.settings, name)
        ]
        try:
            governance = old.derive(effective)
            generation = self.build(governance)
        except (ValueError, TypeError) as exc:
            raise ReloadRefused(f"config not reloaded, nothing changed: {exc}") from None
        started = []
        try:
            for part in generation.components:
                await part.start()
                started.append(part)
            generated = await governance.directory.seed(effective)
        except Exception as exc:
            logger.exception("reload: the new configuration failed to start; keeping the running one")
            for part in reversed(started):
                await settle(f"stopping the new {part.name}", part.stop(), self.lifecycle.server.stop_timeout)
            raise ReloadRefused(f"config not reloaded, nothing changed: {type(exc).__name__}: {exc}") from None
        old.metrics.labels = type(old.metrics.labels)(effective)
        self.lifecycle.install(generation)
        governance.changed()  # keys seeded from the new config are seen at once
        for name, _ in generated:
            logger.warning("reload: generated key %r (its secret is in the reload response, shown once)", name)
        outcome: dict[str, Any] = {"status": "reloaded", "changed": changed}
        if restart:
            outcome["restart_required"] = restart
            outcome["message"] = "restart required: " + ", ".join(restart) + " (running values kept)"
            logger.warning("reload: %s", outcome["message"])
        if generated:
            outcome["generated_keys"] = dict(generated)
        logger.info("reload: applied (changed: %s)", ", ".join(changed) or "nothing")
        return outcome


def _cache_prefix_follows_running_redis_prefix(effective: GatewaySettings, loaded: GatewaySettings) -> GatewaySettings:
    """A `cache.redis_prefix` the file leaves unset is derived from `redis_prefix` when the file loads: if the file
    changed `redis_prefix` (kept at its running value until a restart), derive the cache's from the running one too,
    or the reloaded cache would share its entries under a prefix nothing else of this process uses."""
    cache = loaded.cache
    if cache is None or effective.redis_prefix == loaded.redis_prefix:
        return effective
    if cache.redis_prefix != loaded.redis_prefix + CACHE_SUFFIX:
        return effective  # set explicitly in the file: a cache setting, applied by the reload
    kept = cache.model_copy(update={"redis_prefix": effective.redis_prefix + CACHE_SUFFIX})
    return effective.model_copy(update={"cache": kept})
