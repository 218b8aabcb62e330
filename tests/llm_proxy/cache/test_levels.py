"""`cache:` on teams and customers: the most specific level that says something decides (key, team, customer,
then the gateway's `cache:`), from the config and through the admin API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.llm_proxy.cache.conftest import OTHER_KEY, SAME_TEAM_KEY, Clock, cache_settings, use_clock
from tests.llm_proxy.cache.test_exact import chat, chat_body
from tests.llm_proxy.conftest import KEY, serve_gateway
from tests.llm_proxy.mock_provider import MockProvider
from toolpolicy.config import ConfigError, load_config_text

pytestmark = pytest.mark.anyio
ADMIN = {"authorization": "Bearer admin-secret-for-levels"}
BY_TEAM = "isk-llm-team-level-key"


def levels(customer: Any, dev: Any, ops: Any, key_cache: Any) -> dict[str, Any]:
    """acme (customer) > dev, ops (teams) > dev-key (own setting), dev-two, ops-key (none of their own)."""
    return {
        "customers": [{"name": "acme", "cache": customer}],
        "teams": [{"name": "dev", "customer": "acme", "cache": dev}, {"name": "ops", "customer": "acme", "cache": ops}],
        "virtual_keys": [
            {"name": "dev-key", "team": "dev", "value": KEY, "models": ["*"], "cache": key_cache},
            {"name": "dev-two", "team": "dev", "value": SAME_TEAM_KEY, "models": ["*"]},
            {"name": "ops-key", "team": "ops", "value": OTHER_KEY, "models": ["*"]},
        ],
    }


async def outcome(gateway: Any, key: str) -> str:
    return str((await chat(gateway, chat_body(), key=key)).headers["x-isthmus-cache"])


async def test_the_most_specific_level_wins(tmp_path: Path, mock: MockProvider, clock: Clock) -> None:
    # The customer turns the cache off, team dev sets ten minutes, team ops says nothing, dev-key turns it back on.
    settings = cache_settings(tmp_path, mock, {"ttl": "1h"}, **levels(False, {"ttl": "10m"}, None, True))
    async with serve_gateway(settings) as gateway:
        use_clock(gateway, clock)
        assert [await outcome(gateway, OTHER_KEY) for _ in range(2)] == ["bypass", "bypass"]  # the customer's
        assert [await outcome(gateway, SAME_TEAM_KEY) for _ in range(2)] == ["miss", "hit"]  # the team's
        assert [await outcome(gateway, KEY) for _ in range(2)] == ["miss", "hit"]  # its own: the gateway's ttl
        clock.now += 11 * 60
        assert await outcome(gateway, SAME_TEAM_KEY) == "miss"  # the team's ten minutes are over
        assert await outcome(gateway, KEY) == "hit"  # the key's own `true` keeps the gateway's hour


async def test_a_key_can_turn_off_what_its_team_turns_on(tmp_path: Path, mock: MockProvider) -> None:
    settings = cache_settings(tmp_path, mock, {}, **levels(None, True, None, False))
    async with serve_gateway(settings) as gateway:
        assert [await outcome(gateway, KEY) for _ in range(2)] == ["bypass", "bypass"]
        assert [await outcome(gateway, SAME_TEAM_KEY) for _ in range(2)] == ["miss", "hit"]


async def test_the_admin_api_sets_a_team_or_customer_cache(tmp_path: Path, mock: MockProvider) -> None:
    settings = cache_settings(tmp_path, mock, {}, admin_key="admin-secret-for-levels")
    async with serve_gateway(settings) as gateway, httpx2.AsyncClient(base_url=gateway.url) as http:
        created = await http.post("/admin/teams", json={"name": "qa", "cache": {"ttl": "5m"}}, headers=ADMIN)
        assert created.status_code == 201, created.text
        assert created.json()["cache"] == {"ttl": 300.0}
        key = {"name": "qa-key", "team": "qa", "models": ["*"]}
        secret = (await http.post("/admin/keys", json=key, headers=ADMIN)).json()["key"]
        assert [await outcome(gateway, secret) for _ in range(2)] == ["miss", "hit"]
        patched = await http.patch("/admin/teams/qa", json={"cache": False}, headers=ADMIN)
        assert patched.status_code == 200 and patched.json()["cache"] is False
        assert (await http.get("/admin/teams/qa", headers=ADMIN)).json()["cache"] is False
        assert await outcome(gateway, secret) == "bypass"
        customer = await http.patch("/admin/customers/acme", json={"cache": {"ttl": "2m"}}, headers=ADMIN)
        assert customer.status_code == 200 and customer.json()["cache"] == {"ttl": 120.0}
        bad = await http.patch("/admin/customers/acme", json={"cache": {"ttl": "soon"}}, headers=ADMIN)
        assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("cache")
        unknown = await http.post("/admin/teams", json={"name": "t2", "cache": {"tll": 5}}, headers=ADMIN)
        assert unknown.status_code == 400 and "tll" in unknown.json()["error"]["param"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("teams: [{name: a, cache: {ttl: soon}}]", "teams[0].cache"),
        ("customers: [{name: a, cache: maybe}]", "customers[0].cache"),
        ("customers: [{name: a, cache: {tll: 5}}]", "tll"),
        ("teams: [{name: a, cache: {ttl: 90d}}]", "teams[0].cache"),
    ],
)
def test_a_bad_team_or_customer_cache_is_refused_at_load_naming_it(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config_text(text, environ={})
    assert problem in str(raised.value)
