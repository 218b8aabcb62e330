from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from toolpolicy.errors import ExpiredKey, MissingKey, RevokedKey, UnknownKey
from toolpolicy.keys import KeyResolver
from toolpolicy.secrets import hash_secret

pytestmark = pytest.mark.anyio

SECRET = "isk-test-secret"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Records:
    """A key lookup that counts its calls and can be changed underneath the resolver."""

    def __init__(self) -> None:
        self.calls = 0
        self.record: dict[str, Any] | None = {
            "id": "k1",
            "name": "bot",
            "key_hash": hash_secret(SECRET),
            "active": True,
            "team": "support",
            "customer": "acme",
            "models": ["openai/*"],
            "mcp": {"docs": ["search_*"]},
        }

    async def __call__(self, digest: str) -> dict[str, Any] | None:
        self.calls += 1
        await asyncio.sleep(0)
        return self.record if self.record and self.record["key_hash"] == digest else None


async def test_a_valid_key_resolves_to_its_principal() -> None:
    resolver = KeyResolver(Records())
    principal = await resolver.resolve(SECRET)
    assert (principal.key_name, principal.team, principal.customer) == ("bot", "support", "acme")
    assert principal.models.matches("openai/gpt-4o") and not principal.models.matches("anthropic/x")


@pytest.mark.parametrize("secret", [None, ""])
async def test_no_key_is_missing(secret: str | None) -> None:
    with pytest.raises(MissingKey):
        await KeyResolver(Records()).resolve(secret)


async def test_a_wrong_key_is_unknown() -> None:
    with pytest.raises(UnknownKey):
        await KeyResolver(Records()).resolve("isk-other")


async def test_resolution_is_cached_until_the_ttl_passes() -> None:
    records, clock = Records(), FakeClock()
    resolver = KeyResolver(records, ttl=5, clock=clock)
    await resolver.resolve(SECRET)
    await resolver.resolve(SECRET)
    assert records.calls == 1

    assert records.record is not None
    records.record["active"] = False  # revoked by another replica
    clock.now += 4.9
    await resolver.resolve(SECRET)
    clock.now += 0.2
    with pytest.raises(RevokedKey):
        await resolver.resolve(SECRET)
    assert records.calls == 2


async def test_invalidate_makes_a_local_change_visible_at_once() -> None:
    records = Records()
    resolver = KeyResolver(records, ttl=3600)
    await resolver.resolve(SECRET)
    records.record = None
    resolver.invalidate()
    with pytest.raises(UnknownKey):
        await resolver.resolve(SECRET)


async def test_concurrent_misses_share_one_lookup() -> None:
    records = Records()
    resolver = KeyResolver(records)
    principals = await asyncio.gather(*(resolver.resolve(SECRET) for _ in range(50)))
    assert records.calls == 1
    assert {p.key_id for p in principals} == {"k1"}


async def test_an_expired_key_is_refused_even_while_cached() -> None:
    records = Records()
    assert records.record is not None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    records.record["expires_at"] = (now + timedelta(seconds=10)).isoformat()
    current = [now]
    resolver = KeyResolver(records, ttl=3600, now=lambda: current[0])
    await resolver.resolve(SECRET)
    current[0] = now + timedelta(seconds=11)
    with pytest.raises(ExpiredKey):
        await resolver.resolve(SECRET)


async def test_the_cache_is_bounded() -> None:
    records = Records()
    resolver = KeyResolver(records, max_entries=3)
    for index in range(10):
        with pytest.raises(UnknownKey):
            await resolver.resolve(f"isk-{index}")
    assert len(resolver._cache) == 3
