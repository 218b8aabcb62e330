"""`/ready` follows the counter store: a replica that would refuse every request (deny) is taken out of rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest

from isthmus.app import create_app
from tests.isthmus.conftest import base_settings
from tests.toolpolicy.limits_support import RedisServer
from toolpolicy.runtime import Governance

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def gateway(
    tmp_path: Path, redis: RedisServer | None, on_error: str = "deny"
) -> AsyncIterator[httpx2.AsyncClient]:
    settings = base_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", redis=redis.url if redis else None, on_counter_store_error=on_error
    )
    governance = Governance(settings)
    await governance.start()
    try:
        transport = httpx2.ASGITransport(app=create_app(settings, governance=governance, components=[]))
        async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
    finally:
        await governance.stop()


async def test_not_ready_while_the_counters_are_down_and_requests_would_be_denied(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    async with gateway(tmp_path, private_redis, "deny") as client:
        up = await client.get("/ready")
        assert up.status_code == 200 and up.json()["counters"] == {"status": "ok", "backend": "redis"}
        private_redis.kill()
        down = await client.get("/ready")
        assert down.status_code == 503 and down.json()["status"] == "not ready"
        assert down.json()["counters"]["status"] == "down"
        assert down.json()["counters"]["on_counter_store_error"] == "deny"
        private_redis.start()
        back = await client.get("/ready")
        assert back.status_code == 200 and back.json()["counters"]["status"] == "ok"


async def test_ready_but_degraded_while_the_counters_are_down_and_requests_fall_back(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    async with gateway(tmp_path, private_redis, "allow") as client:
        private_redis.kill()
        down = await client.get("/ready")
        assert down.status_code == 200 and down.json()["status"] == "ready"
        assert down.json()["counters"]["status"] == "degraded"
        assert down.json()["counters"]["on_counter_store_error"] == "allow"


async def test_in_process_counters_are_always_ready(tmp_path: Path) -> None:
    async with gateway(tmp_path, None) as client:
        ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["counters"] == {"status": "ok", "backend": "memory"}
