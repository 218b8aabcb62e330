"""Which shared tier a gateway's settings give the cache: Redis when `redis:` is set (shared by replicas), else the
gateway's store (kept across restarts; shared live by replicas on PostgreSQL)."""

from __future__ import annotations

from llm_proxy.cache.sql_tier import SqlTier
from llm_proxy.cache.tiers import SharedTier
from toolpolicy.settings import GatewaySettings
from toolpolicy.store.engine import Store


def shared_tier(settings: GatewaySettings, store: Store) -> SharedTier:
    assert settings.cache is not None
    if settings.redis:
        from llm_proxy.cache.redis_tier import RedisTier  # redis-py (about 9 MiB resident) only when configured

        return RedisTier(settings.redis, settings.cache.redis_prefix)
    return SqlTier(store, read_on_miss=settings.cache.read_store_on_miss)
