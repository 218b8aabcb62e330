"""`POST /admin/reload` (SIGHUP runs the same code): validated first, applied whole or not at all, in-flight
requests finishing on the configuration they started on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from aiohttp import web

from isthmus.app import create_app
from tests.isthmus.conftest import ADMIN_KEY
from tests.llm_proxy.mock_provider import MockProvider, openai_chat
from toolpolicy.config import load_config

pytestmark = pytest.mark.anyio
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
BOT = {"authorization": "Bearer isk-reload-bot"}
NEW = {"authorization": "Bearer isk-reload-new"}
CHAT = {"model": "mock/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Held:
    """A provider answer held until the test releases it."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        self.arrived.set()
        await self.release.wait()
        return await openai_chat(request, body)


def config(tmp_path: Path, provider_url: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "store": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "admin_key": ADMIN_KEY,
        "providers": {"mock": {"kind": "openai", "base_url": f"{provider_url}/v1", "keys": [{"value": "sk-mock"}]}},
        "virtual_keys": [{"name": "bot", "value": "isk-reload-bot", "models": ["mock/*"]}],
        "audit": {"flush_interval": 0.05},
    }
    data.update(changes)
    return data


class Running:
    def __init__(self, path: Path, client: httpx2.AsyncClient, app: Any) -> None:
        self.path, self.client, self.app = path, client, app

    def write(self, data: dict[str, Any] | str) -> None:
        self.path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))

    async def reload(self) -> httpx2.Response:
        return await self.client.post("/admin/reload", headers=ADMIN)


@pytest.fixture
async def providers() -> AsyncIterator[tuple[MockProvider, MockProvider]]:
    first, second = MockProvider(), MockProvider()
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


@pytest.fixture
async def running(tmp_path: Path, providers: tuple[MockProvider, MockProvider]) -> AsyncIterator[Running]:
    path = tmp_path / "isthmus.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, providers[0].url)))
    settings = load_config(path, environ={})
    app = create_app(settings, reload_from=lambda: load_config(path, environ={}))
    transport = httpx2.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx2.AsyncClient(transport=transport, base_url="http://gw") as c:
        yield Running(path, c, app)


async def test_a_reload_applies_new_keys_and_names_what_changed(running: Running, tmp_path: Path) -> None:
    assert (await running.client.post("/v1/chat/completions", json=CHAT, headers=NEW)).status_code == 401
    data = config(tmp_path, "http://unused")
    data["providers"] = yaml.safe_load(running.path.read_text())["providers"]
    data["virtual_keys"].append({"name": "new", "value": "isk-reload-new", "models": ["mock/*"]})
    running.write(data)
    reloaded = await running.reload()
    assert reloaded.status_code == 200
    assert reloaded.json() == {"status": "reloaded", "changed": ["virtual_keys"]}
    assert (await running.client.post("/v1/chat/completions", json=CHAT, headers=NEW)).status_code == 200


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("providers: [not, a, mapping\n", "line 1"),
        ("virtual_keys: [{name: x, team: nobody}]\n", "no team named 'nobody'"),
        ("listen: nowhere\n", "HOST:PORT"),
    ],
)
async def test_a_bad_config_changes_nothing_and_the_answer_names_the_problem(
    running: Running, text: str, problem: str
) -> None:
    before = running.app.state.lifecycle.current
    running.write(text)
    refused = await running.reload()
    assert refused.status_code == 400
    assert problem in refused.json()["error"]["message"] and "nothing changed" in refused.json()["error"]["message"]
    assert running.app.state.lifecycle.current is before
    assert (await running.client.post("/v1/chat/completions", json=CHAT, headers=BOT)).status_code == 200


async def test_settings_opened_once_are_kept_and_the_answer_says_restart_required(
    running: Running, tmp_path: Path, providers: tuple[MockProvider, MockProvider]
) -> None:
    running.write(config(tmp_path, providers[0].url, listen="127.0.0.1:9999", redis="redis://127.0.0.1:6379/0"))
    reloaded = (await running.reload()).json()
    assert reloaded["restart_required"] == ["listen", "redis"]
    assert reloaded["message"] == "restart required: listen, redis (running values kept)"
    assert running.app.state.governance.settings.listen == "127.0.0.1:8080"
    assert running.app.state.governance.settings.redis is None


async def test_a_cache_prefix_derived_from_a_changed_redis_prefix_follows_the_running_one(
    running: Running, tmp_path: Path, providers: tuple[MockProvider, MockProvider]
) -> None:
    running.write(config(tmp_path, providers[0].url, redis_prefix="staging:", cache={"ttl": 60}))
    reloaded = (await running.reload()).json()
    assert reloaded["restart_required"] == ["redis_prefix"]
    settings = running.app.state.governance.settings
    assert settings.redis_prefix == "isthmus:"
    assert settings.cache.redis_prefix == "isthmus:cache:"
    explicit = {"ttl": 60, "redis_prefix": "tenant-b:cache:"}
    running.write(config(tmp_path, providers[0].url, redis_prefix="staging:", cache=explicit))
    await running.reload()
    assert running.app.state.governance.settings.cache.redis_prefix == "tenant-b:cache:"


async def test_in_flight_requests_finish_on_the_old_config_and_new_ones_use_the_new(
    running: Running, tmp_path: Path, providers: tuple[MockProvider, MockProvider]
) -> None:
    first, second = providers
    held = Held()
    first.queue(held)
    old = running.app.state.lifecycle.current
    in_flight = asyncio.create_task(running.client.post("/v1/chat/completions", json=CHAT, headers=BOT))
    await held.arrived.wait()
    running.write(config(tmp_path, second.url))
    assert (await running.reload()).json()["changed"] == ["providers"]
    answered = await running.client.post("/v1/chat/completions", json=CHAT, headers=BOT)
    assert answered.status_code == 200 and len(second.seen) == 1
    assert old.active == 1 and old in running.app.state.lifecycle._unstopped  # still serving its request
    held.release.set()
    assert (await in_flight).status_code == 200 and len(first.seen) == 1
    assert await old.idle(timeout=30)
    while old in running.app.state.lifecycle._unstopped:
        await asyncio.sleep(0)  # the old generation's components stop once its last request ended


async def test_mcp_servers_added_and_removed_by_a_reload(
    running: Running, tmp_path: Path, providers: tuple[MockProvider, MockProvider]
) -> None:
    servers = {"docs": {"url": "http://127.0.0.1:9/mcp"}}
    running.write(config(tmp_path, providers[0].url, mcp_servers=servers))
    assert (await running.reload()).json()["changed"] == ["mcp_servers"]
    assert set((await running.client.get("/ready")).json()["mcp"]["servers"]) == {"docs"}
    running.write(config(tmp_path, providers[0].url))
    assert (await running.reload()).json()["changed"] == ["mcp_servers"]
    assert (await running.client.get("/ready")).json()["mcp"]["servers"] == {}


async def test_reload_needs_the_admin_key(running: Running) -> None:
    assert (await running.client.post("/admin/reload")).status_code == 401


async def test_a_gateway_started_without_a_config_file_has_nothing_to_reload(tmp_path: Path) -> None:
    settings = load_config(_write(tmp_path, config(tmp_path, "http://127.0.0.1:9")), environ={})
    app = create_app(settings, components=[])
    transport = httpx2.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx2.AsyncClient(transport=transport, base_url="http://gw") as c:
        refused = await c.post("/admin/reload", headers=ADMIN)
    assert refused.status_code == 400 and "without a config file" in refused.json()["error"]["message"]


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "fixed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
