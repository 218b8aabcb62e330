"""Which models each provider serves: its configured `models:`, else its upstream's own listing, fetched in the
background and refreshed, else its kind's default models.

Nothing waits on an upstream here: `GET /v1/models` and name resolution read the last listing known. The refresh
task fetches a provider's listing when it is due (at start, then every `llm.models_refresh` seconds), each fetch
bounded by `llm.models_timeout`, over the provider's own adapter and so the one pooled upstream client. A failed
fetch keeps the last good listing (or, before any, the default models), is logged, and is tried again sooner: 15 s,
doubling up to the refresh interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from llm_proxy.errors import UpstreamError, UpstreamStatusError
from llm_proxy.keys import KeyPool
from llm_proxy.providers.base import ProviderAdapter
from toolpolicy.settings import LlmSettings

logger = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = 15.0
"""Seconds before a failed listing fetch is tried again, doubled at each further failure (up to the interval)."""
IDLE_WAIT = 0.05
"""Shortest sleep of the refresh task between two rounds, so a clock that stands still cannot make it spin."""


@dataclass(slots=True)
class Listing:
    """What one provider lists, and where that came from."""

    configured: tuple[str, ...]
    defaults: tuple[str, ...]
    fetches: bool
    """Whether the upstream's listing is fetched (no `models:` configured and the kind has a listing)."""
    fetched: tuple[str, ...] | None = None
    """The last good listing from the upstream."""
    fetched_at: float | None = None
    due: float = 0.0
    failures: int = 0
    error: str | None = None

    @property
    def models(self) -> tuple[str, ...]:
        if self.configured:
            return self.configured
        return self.fetched if self.fetched is not None else self.defaults

    @property
    def source(self) -> str:
        if self.configured:
            return "configured"
        return "upstream" if self.fetched is not None else "default"


class ModelCatalog:
    """The models of every provider, by name, with an index from a model id to the providers that list it."""

    def __init__(
        self,
        settings: LlmSettings,
        adapters: dict[str, ProviderAdapter],
        pools: dict[str, KeyPool],
        configured: dict[str, tuple[str, ...]],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.adapters = adapters
        self.pools = pools
        self.clock = clock
        self.sleep = sleep
        self.listings = {
            name: Listing(
                configured=configured.get(name, ()),
                defaults=adapter.default_models,
                fetches=not configured.get(name) and adapter.lists_models and settings.models_refresh > 0,
            )
            for name, adapter in adapters.items()
        }
        self._owners: dict[str, tuple[str, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self._index()

    def _serving(self) -> list[str]:
        """Providers that can answer: one without a usable key is neither listed nor resolved to."""
        return [name for name in self.listings if self.pools[name].keys]

    def _index(self) -> None:
        owners: dict[str, list[str]] = {}
        for name in self._serving():
            for model in dict.fromkeys(self.listings[name].models):
                owners.setdefault(model, []).append(name)
        self._owners = {model: tuple(names) for model, names in owners.items()}

    def models(self, provider: str) -> tuple[str, ...]:
        return self.listings[provider].models

    def listed(self) -> list[tuple[str, str]]:
        """(`provider/model`, provider) of every provider that can answer, in configuration order."""
        return [
            (f"{name}/{model}", name) for name in self._serving() for model in dict.fromkeys(self.listings[name].models)
        ]

    def owners(self, model: str) -> tuple[str, ...]:
        """The providers (in configuration order) whose listing names `model` exactly."""
        return self._owners.get(model, ())

    def summary(self) -> dict[str, dict[str, Any]]:
        """For `/ready`: where each provider's listing comes from, its size, and the last fetch error."""
        summary: dict[str, dict[str, Any]] = {}
        for name, listing in self.listings.items():
            summary[name] = {"source": listing.source, "count": len(listing.models)}
            if listing.error:
                summary[name]["error"] = listing.error
        return summary

    # --- refreshing --------------------------------------------------------------------------------------------

    def due(self) -> list[str]:
        now = self.clock()
        return [
            name
            for name, listing in self.listings.items()
            if listing.fetches and listing.due <= now and not self.pools[name].problem
        ]

    async def refresh_due(self) -> float:
        """Fetch every listing that is due, concurrently; the seconds until the next one is."""
        names = self.due()
        if names:
            await asyncio.gather(*(self.refresh(name) for name in names))
        upcoming = [
            listing.due for name, listing in self.listings.items() if listing.fetches and not self.pools[name].problem
        ]
        if not upcoming:
            return self.settings.models_refresh
        return max(IDLE_WAIT, min(upcoming) - self.clock())

    async def refresh(self, name: str) -> None:
        """Fetch one provider's listing now; never raises (a failure is logged and remembered)."""
        listing = self.listings[name]
        try:
            async with asyncio.timeout(self.settings.models_timeout):
                models = await self.adapters[name].list_models(self._key(name))
        except TimeoutError:
            self._failed(name, f"no answer within models_timeout ({self.settings.models_timeout:g} s)", "timeout")
            return
        except UpstreamStatusError as exc:
            self._failed(name, exc.message, f"HTTP {exc.upstream_status}")
            return
        except UpstreamError as exc:
            self._failed(name, exc.message, exc.code or "upstream_error")
            return
        except Exception as exc:
            logger.exception("listing the models of provider %r failed", name)
            self._failed(name, type(exc).__name__, "internal_error")
            return
        if listing.failures:
            logger.info("provider %r lists its models again (%d)", name, len(models))
        listing.fetched = tuple(dict.fromkeys(models))
        listing.fetched_at = self.clock()
        listing.due = listing.fetched_at + self.settings.models_refresh
        listing.failures = 0
        listing.error = None
        self._index()

    def _failed(self, name: str, reason: str, summary: str) -> None:
        """Remember a failure: `reason` (the upstream's words) goes to the log, `summary` (no upstream text, which
        may quote a key) to `/ready`."""
        listing = self.listings[name]
        listing.failures += 1
        listing.error = summary
        delay = min(self.settings.models_refresh, RETRY_AFTER_FAILURE * 2.0 ** min(listing.failures - 1, 20))
        listing.due = self.clock() + delay
        if listing.fetched is not None:
            serving = f"keeping its last listing ({len(listing.fetched)} models)"
        else:
            serving = f"listing its default models ({len(listing.defaults)})"
        # The first failure of a streak is a warning; the retries that follow it are not worth one each.
        log = logger.warning if listing.failures == 1 else logger.info
        log("could not list the models of provider %r: %s; %s, next try in %.0f s", name, reason, serving, delay)

    def _key(self, name: str) -> str | None:
        """A key to list with: the first that serves every model, else the first."""
        keys = self.pools[name].keys
        chosen = next((key for key in keys if key.models is None), keys[0] if keys else None)
        return chosen.secret if chosen is not None else None

    async def run(self) -> None:
        """Refresh listings as they come due, until cancelled."""
        while True:
            await self.sleep(await self.refresh_due())

    def start(self) -> None:
        """Start the refresh task in the background (the first fetches begin at once); nothing waits for them."""
        if self._task is None and any(listing.fetches for listing in self.listings.values()):
            self._task = asyncio.get_running_loop().create_task(self.run(), name="isthmus-model-listings")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
