"""An in-process gateway over a real store, driven through httpx2's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx2
import pytest

from isthmus.app import create_app
from tests.conftest import StoreTarget
from toolpolicy.runtime import Governance
from toolpolicy.settings import GatewaySettings

ADMIN_KEY = "test-admin-key"
BOT_KEY = "isk-test-bot-secret"

GatewayFactory = Callable[..., AbstractAsyncContextManager[tuple[Governance, httpx2.AsyncClient]]]


def base_settings(store_url: str, **overrides: Any) -> GatewaySettings:
    data: dict[str, Any] = {
        "store": store_url,
        "admin_key": ADMIN_KEY,
        "mcp_servers": {"docs": {"url": "http://127.0.0.1:9/mcp"}},
        "customers": [{"name": "acme"}],
        "teams": [{"name": "support", "customer": "acme"}],
        "virtual_keys": [
            {
                "name": "bot",
                "team": "support",
                "value": BOT_KEY,
                "models": ["openai/gpt-4o-mini"],
                "mcp": {"docs": ["search_*"]},
            }
        ],
        "audit": {"flush_interval": 0.05},
    }
    data.update(overrides)
    return GatewaySettings.model_validate(data)


@pytest.fixture
def gateway_factory(store_target: StoreTarget) -> GatewayFactory:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[Governance, httpx2.AsyncClient]]:
        settings = base_settings(store_target.url, **overrides)
        governance = Governance(settings, store_connect_args=store_target.connect_args)
        await governance.start()
        transport = httpx2.ASGITransport(app=create_app(settings, governance=governance, components=[]))
        try:
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as client:
                yield governance, client
        finally:
            await governance.stop()

    return start


@pytest.fixture
async def governance(gateway_factory: GatewayFactory) -> AsyncIterator[tuple[Governance, httpx2.AsyncClient]]:
    async with gateway_factory() as started:
        yield started


def admin(**headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_KEY}", **headers}
