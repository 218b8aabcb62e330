"""Two deployments on one Redis, told apart by `redis_prefix`: each holds its own rate limits, neither serves the
other's 2025-era sessions, and the default prefix keeps the key names of earlier releases.

Staging's store is a copy of production's, so both have the same virtual key ids: the same counter and session
names but for the prefix (with separate stores, random ids would keep them apart whatever the prefix)."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from tests.mcp_hub.conftest import FULL_KEY, METERED_KEY, Gateway, fixture_server, hub_settings, serving
from tests.mcp_hub.test_resume import MCP_HEADERS, open_session
from tests.toolpolicy.counters.test_prefix import redis_keys
from tests.toolpolicy.limits_support import RedisServer

pytestmark = pytest.mark.anyio


async def shout(gateway: Gateway) -> bool:
    """One call of the metered key (2 a day to each server); whether it was allowed."""
    async with gateway.client(METERED_KEY, "legacy") as client:
        result = await client.call_tool("fx__shout", {"text": "hi"})
    return not result.is_error


async def test_two_deployments_on_one_redis_keep_their_limits_and_sessions_apart(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    servers = {"fx": fixture_server()}
    (tmp_path / "prod").mkdir()
    (tmp_path / "staging").mkdir()
    production_settings = hub_settings(tmp_path / "prod", servers, redis=private_redis.url)  # the default prefix
    staging_settings = hub_settings(tmp_path / "staging", servers, redis=private_redis.url, redis_prefix="staging:")
    async with serving(production_settings):
        pass  # seeds production's store; staging's is a copy, as one restored from a backup: the same key ids
    for file in (tmp_path / "prod").glob("hub.db*"):
        shutil.copy(file, tmp_path / "staging" / file.name)
    async with serving(production_settings) as production, serving(staging_settings) as staging:
        with anyio.fail_after(60):
            # A limit of 2 on each: with one shared counter the second deployment's calls would be refused.
            assert [await shout(gateway) for gateway in (production, staging, production, staging)] == [True] * 4
            assert [await shout(gateway) for gateway in (production, staging)] == [False, False]

            async with production.http(FULL_KEY) as on_production, staging.http(FULL_KEY) as on_staging:
                session = await open_session(on_production)
                tools_list = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
                headers = {**MCP_HEADERS, **session}
                assert (await on_staging.post("/mcp", json=tools_list, headers=headers)).status_code == 404
                assert (await on_production.post("/mcp", json=tools_list, headers=headers)).status_code == 200

    keys = await redis_keys(private_redis.url)
    sid = session["mcp-session-id"]
    assert "isthmus:since" in keys and "staging:since" in keys
    assert f"isthmus:mcp:s:{sid}" in keys and f"staging:mcp:s:{sid}" not in keys
    assert "isthmus:mcp:state-key" in keys and "staging:mcp:state-key" in keys
    assert {key.split(":u:")[0] for key in keys if ":u:" in key} == {"isthmus", "staging"}
    assert all(key.startswith(("isthmus:", "staging:")) for key in keys), keys
