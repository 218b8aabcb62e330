"""The response cache's configuration (`cache:`, and the `cache:` of a key, a team or a customer), as pydantic models.

Storage-agnostic: the cache itself lives in `llm_proxy.cache`; these models only describe and validate.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_TTL = 30 * 86400.0
"""The longest time to live any setting or header may give an entry: 30 days."""


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string such as `90`, `10m`, `1h`, `2d`."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 600, '10m' or '1h'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    raise ValueError("must be a duration such as 600, '10m' or '1h'")


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=MAX_TTL)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class CacheSkip(_Model):
    """Requests the cache neither reads nor writes (answered with `x-isthmus-cache: bypass`)."""

    temperature_above: float | None = Field(default=None, ge=0, le=2)
    """Skip requests whose `temperature` is above this; null caches any temperature."""
    tools: bool = False
    """Skip requests that offer the model tools (`tools` non-empty)."""


class SemanticSettings(_Model):
    """The semantic cache: a question near enough in meaning to a stored one is answered with its answer."""

    embedding_model: str = Field(min_length=3, max_length=512, pattern=r"^[^/\s]+/\S+$")
    """`provider/model` of a configured provider's embedding model; called through the gateway under the calling
    key's governance (its allowlist, limits and budgets)."""
    threshold: float = Field(default=0.92, gt=0, le=1)
    """The cosine similarity a stored question must reach to answer."""
    max_messages: int = Field(default=4, ge=1, le=64)
    """Longer conversations are cached exactly or not at all."""


CacheScope = Literal["key", "team", "customer", "global"]


class CacheSettings(_Model):
    """The response cache of chat completions, Messages and Responses; absent means no cache."""

    ttl: Duration = 3600.0
    """How long an entry is served: seconds or a duration such as `10m`, `1h` (at most 30 days)."""
    max_ttl: Duration = 86400.0
    """The longest time to live a request may ask for with `x-isthmus-cache-ttl`; larger values answer 400."""
    scope: CacheScope = "key"
    """Who shares entries: the calling key, its team, its customer, or everyone. A key without a team (or customer)
    falls back to its own key's entries: a scope never widens past what the key belongs to."""
    exact: bool = True
    """The exact cache (a hash of the normalised request); false turns the cache off."""
    semantic: SemanticSettings | None = None
    """The semantic cache, checked after an exact miss; null is off."""
    skip_when: CacheSkip = Field(default_factory=CacheSkip)
    """Visible rules for requests never cached."""
    redis_prefix: str = Field(default="isthmus:cache:", min_length=1, max_length=128)
    """Prefix of the cache's Redis keys and channel, when the gateway's `redis` is set (entries are then shared by
    replicas). Not set: the gateway's `redis_prefix` followed by `cache:` (`isthmus:cache:` by default)."""
    max_entries: int = Field(default=100_000, ge=1, le=10_000_000)
    """Entries kept in memory per replica (least recently used go first); the store and Redis keep theirs until
    they expire or are cleared."""
    read_store_on_miss: bool = True
    """On a PostgreSQL store without `redis`: a memory miss reads the store (one primary-key query on a held
    connection, about 0.06 ms of CPU and one round trip), so an entry another replica stored is a hit. False leaves
    only searchable entries shared (they arrive by `NOTIFY`). SQLite and Redis ignore it."""


class KeyCache(_Model):
    """The cache settings of a key, a team or a customer (`cache: {ttl: 10m}`)."""

    ttl: Duration | None = None
    """Time to live of the entries its requests write; null uses the gateway's `cache.ttl`."""


def _cache_setting(value: object) -> object:
    """True, false, null or an object, nothing else: the error names the field, not the union's branches."""
    if value is None or isinstance(value, bool | KeyCache):
        return value
    if isinstance(value, dict):
        return KeyCache.model_validate(value)  # its errors keep their place: `cache.ttl`, `cache.<unknown>`
    raise ValueError("must be true, false or an object such as {ttl: 10m}")


KeyCacheSetting = Annotated[bool | KeyCache | None, BeforeValidator(_cache_setting)]
"""The `cache` of a key, a team or a customer: null says nothing (the next level up decides), true follows the
gateway's cache, false turns it off, an object sets the ttl. The most specific level that says something decides
alone: key, then team, then customer, then the gateway's `cache:`."""
