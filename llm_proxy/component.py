"""The LLM proxy as a gateway component: its routes, its one pooled upstream client, its readiness."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

from llm_proxy.agent import AgentEdge, AgentLoop, ToolHost
from llm_proxy.cache import ResponseCache
from llm_proxy.cache.storage import shared_tier
from llm_proxy.endpoints import Endpoints
from llm_proxy.pipeline import Pipeline
from llm_proxy.providers._registry import build_adapters
from llm_proxy.responses import ResponsesRoutes
from llm_proxy.routing import Router
from llm_proxy.upstream import Upstream
from toolpolicy.runtime import Governance
from toolpolicy.store.responses import ResponseStore

if TYPE_CHECKING:
    from llm_proxy.health_sync import RedisHealthSync


class LlmProxy:
    """OpenAI- (chat, embeddings, Responses) and Anthropic-compatible endpoints over the configured providers.

    Construct it with the shared `Governance`; `start()` opens the one aiohttp session all provider traffic uses
    and `stop()` closes it.
    """

    name = "llm_proxy"

    def __init__(self, governance: Governance) -> None:
        self.governance = governance
        settings = governance.settings
        self.upstream = Upstream(settings.llm)
        self.router = Router(settings, build_adapters(settings.providers, self.upstream))
        self.pipeline = Pipeline(governance, self.router)
        self.endpoints = Endpoints(self.pipeline)
        self.responses = ResponsesRoutes(self.pipeline, ResponseStore(governance.store))
        self.response_cache: ResponseCache | None = None
        """The response cache, when `cache:` is configured (`docs/cache.md`)."""
        if settings.cache is not None:
            shared = shared_tier(settings, governance.store)
            self.response_cache = ResponseCache(self.pipeline, settings.cache, shared=shared)
            self.endpoints.cache = self.responses.cache = self.response_cache
        self.health_sync: RedisHealthSync | None = None
        """Breakers and key cool-downs shared with other replicas, when `redis:` is set (`docs/scale-out.md`)."""
        if settings.redis:
            from llm_proxy.health_sync import RedisHealthSync  # redis-py only for gateways configured with Redis

            self.health_sync = RedisHealthSync(self.router.health, settings.redis, redis_prefix=settings.redis_prefix)
        self.agent: AgentLoop | None = None
        """Agent mode's loop, once `run_tools_with` gave it a tool host (the Responses API hosts it too)."""

    def run_tools_with(self, host: ToolHost) -> None:
        """Agent mode: keys with an `agent` block get `host`'s tools in their chat, Messages and Responses requests,
        and Responses requests may name hub servers as hosted `mcp` tools."""
        self.agent = AgentLoop(self.pipeline, host)
        self.endpoints.agent = AgentEdge(self.pipeline, self.agent)
        self.responses.host_agent(self.agent)

    def routes(self) -> list[BaseRoute]:
        return [*self.endpoints.routes(), *self.responses.routes()]

    async def start(self) -> None:
        await self.upstream.start()
        if self.health_sync is not None:
            await self.health_sync.start()
        if self.response_cache is not None:
            await self.response_cache.start()
        # Providers configured without `models:` have their upstream's listing fetched in the background: a slow
        # or unreachable upstream delays neither start-up nor any request.
        self.router.catalog.start()
        # No tiktoken encoding is loaded here: o200k_base costs about 85 MiB resident, and most providers report
        # usage, so the first request that has to count loads it, in a worker thread (`tokens.load`).

    async def stop(self) -> None:
        if self.response_cache is not None:
            await self.response_cache.stop()
        await self.router.catalog.stop()
        if self.health_sync is not None:
            await self.health_sync.stop()
        await self.upstream.close()

    def readiness(self) -> dict[str, Any]:
        providers = {
            name: {"kind": adapter.kind, "keys": len(self.router.pools[name].keys)}
            for name, adapter in self.router.adapters.items()
        }
        return {
            "status": "ok" if self.upstream.started else "down",
            "providers": providers,
            "aliases": sorted(self.router.aliases),
            "models": self.router.catalog.summary(),
            "skipped": self.router.health.summary(),
        }
