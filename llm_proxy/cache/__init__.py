"""The response cache of chat completions, Messages and Responses (`docs/cache.md`): `ResponseCache` is the entry
point; a route calls `lookup` once and, on a miss, `Lookup.store` (non-stream) or `Lookup.watch` (stream)."""

from llm_proxy.cache.cache import ResponseCache
from llm_proxy.cache.lookup import OFF, Lookup

__all__ = ["OFF", "Lookup", "ResponseCache"]
