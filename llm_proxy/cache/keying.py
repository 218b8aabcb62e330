"""What an entry is keyed by: who may share it (scope), the route, the resolved model, and a canonical hash of every
request parameter that can change the answer.

Every body field is hashed except those in `EXCLUDED`, which change how the answer is delivered or recorded but
not what it says. Hashing all but a short list (rather than a list of what matters) keeps a parameter a provider
adds later from ever sharing an entry by mistake.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from toolpolicy.cache_settings import CacheScope
from toolpolicy.types import Principal

EXCLUDED = frozenset(
    {
        "model",  # replaced by the model after alias resolution
        "stream",  # a stream is replayed from a non-stream entry and the other way round
        "stream_options",
        "user",
        "metadata",
        "store",
        "fallbacks",  # the answer is keyed by the requested model; which target answered does not split it
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "service_tier",
    }
)
"""Body fields that never split entries."""


def scope_of(principal: Principal, scope: CacheScope) -> str:
    """The sharing scope: never wider than what the key belongs to (a key with no team keeps its own entries)."""
    if scope == "global":
        return "global"
    if scope == "customer" and principal.customer_id:
        return f"customer:{principal.customer_id}"
    if scope == "team" and principal.team_id:
        return f"team:{principal.team_id}"
    return f"key:{principal.key_id}"


def parameters_hash(body: dict[str, Any]) -> str:
    """sha256 of the body's answer-changing fields as canonical JSON (sorted keys, no spaces)."""
    kept = {name: value for name, value in body.items() if name not in EXCLUDED}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class EntryKey:
    scope: str
    route: str
    """`chat`, `messages` or `responses`: each entry is replayed in its own route's shape."""
    model: str
    params: str

    def text(self) -> str:
        return f"{self.scope}|{self.route}|{self.model}|{self.params}"


def entry_key(principal: Principal, scope: CacheScope, route: str, model: str, body: dict[str, Any]) -> EntryKey:
    return EntryKey(scope_of(principal, scope), route, model, parameters_hash(body))
