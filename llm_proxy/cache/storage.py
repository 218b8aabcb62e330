"""Which shared tier a gateway's settings give the cache."""

from __future__ import annotations

from llm_proxy.cache.tiers import SharedTier
from toolpolicy.settings import GatewaySettings
from toolpolicy.store.engine import Store


def shared_tier(settings: GatewaySettings, store: Store) -> SharedTier | None:
    return None
