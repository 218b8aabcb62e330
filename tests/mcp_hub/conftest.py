"""A real gateway on 127.0.0.1 (uvicorn, so the SDK's session manager runs in the lifespan) over real upstreams.

Upstreams are the fixture server (`tests/servers/fixture_server.py`) over stdio and over Streamable HTTP, and
`mcp-server-time` from PyPI over stdio. Clients are the SDK's `Client` in legacy and in 2026-07-28 mode.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from anyio.abc import TaskGroup, TaskStatus
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.types import ASGIApp

from isthmus.app import create_app, default_components
from isthmus.component import Component
from mcp_hub import McpHub
from toolpolicy.runtime import Governance
from toolpolicy.settings import GatewaySettings

FIXTURE = Path(__file__).parents[1] / "servers" / "fixture_server.py"
ADMIN_KEY = "hub-admin-key"
FULL_KEY = "isk-hub-full"
LIMITED_KEY = "isk-hub-limited"
TIME_KEY = "isk-hub-time-only"
METERED_KEY = "isk-hub-metered"
MODES = ["legacy", "2026-07-28"]


def fixture_server(*args: str, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(FIXTURE), *args], **extra}


def time_server() -> dict[str, Any]:
    return {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}


def hub_settings(
    tmp_path: Path, servers: dict[str, Any], *, keys: tuple[dict[str, Any], ...] = (), **overrides: Any
) -> GatewaySettings:
    data: dict[str, Any] = {
        "store": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "admin_key": ADMIN_KEY,
        "key_cache_ttl": 0,
        "mcp_servers": servers,
        "customers": [{"name": "acme"}],
        "teams": [{"name": "agents", "customer": "acme"}],
        "virtual_keys": [
            {"name": "full", "team": "agents", "value": FULL_KEY, "mcp": {name: ["*"] for name in servers}},
            {
                "name": "limited",
                "team": "agents",
                "value": LIMITED_KEY,
                "mcp": {name: ["add", "echo", "get_*"] for name in servers},
            },
            {"name": "time-only", "value": TIME_KEY, "mcp": {"time": ["*"]} if "time" in servers else {}},
            {
                "name": "metered",
                "value": METERED_KEY,
                "mcp": {name: ["*"] for name in servers},
                "mcp_rate_limit": {"calls": "100/1d", "per_server": dict.fromkeys(servers, "2/1d")},
            },
            *keys,
        ],
        "audit": {"flush_interval": 0.05},
        "mcp": {"backoff_initial": 0.1, "backoff_max": 1.0, "connect_timeout": 15, "key_watch_interval": 0.2},
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in ("mcp", "audit") else value
    return GatewaySettings.model_validate(data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Gateway:
    base_url: str
    governance: Governance
    hub: McpHub

    def mcp_url(self, server: str | None = None) -> str:
        return f"{self.base_url}/mcp" + (f"/{server}" if server else "")

    def http(self, key: str | None = None, **headers: str) -> httpx2.AsyncClient:
        auth = {"authorization": f"Bearer {key}"} if key else {}
        return httpx2.AsyncClient(base_url=self.base_url, headers={**auth, **headers}, timeout=30)

    @asynccontextmanager
    async def client(
        self, key: str, mode: str, *, server: str | None = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> AsyncIterator[Client]:
        http = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}", **(headers or {})}, timeout=30)
        transport = streamable_http_client(self.mcp_url(server), http_client=http)
        async with http, Client(transport, mode=mode, cache=None, **kwargs) as client:
            yield client

    async def audit(self, **filters: Any) -> list[dict[str, Any]]:
        from toolpolicy.store.audit_log import AuditQuery

        await self.governance.audit.flush()
        rows, _ = await self.governance.audit_log.query(AuditQuery(kind="tool_call", **filters))
        return rows


@asynccontextmanager
async def serving(
    settings: GatewaySettings,
    port: int | None = None,
    *,
    both_halves: bool = False,
    direct: bool = True,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[Gateway]:
    """The gateway (governance, hub; with `both_halves` also the LLM proxy, wired as `isthmus serve` wires them)
    served by uvicorn on 127.0.0.1 (on `port`, or a free one); `direct=False` without the direct dispatch.

    Leaving it stops it as a restart would: streams still open (a bridge's GET stream) are cut after a second.
    """
    governance = Governance(settings)
    await governance.start()
    parts: list[Component] = default_components(governance) if both_halves else [McpHub(governance, clock=clock)]
    hub = next(part for part in parts if isinstance(part, McpHub))
    app = create_app(settings, governance=governance, components=parts, direct=direct)
    try:
        async with served(app, port) as base_url:
            yield Gateway(base_url, governance, hub)
    finally:
        await governance.stop()


@asynccontextmanager
async def served(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """`app` served by uvicorn on 127.0.0.1 (on `port`, or a free one); yields its base URL. Leaving it stops the
    server; streams still open are cut after a second."""
    port = port or free_port()
    async with uvicorn_serving(app, port):
        yield f"http://127.0.0.1:{port}"


@asynccontextmanager
async def uvicorn_serving(app: Any, port: int, *, lifespan: str = "on") -> AsyncIterator[None]:
    """`app` served by uvicorn on 127.0.0.1:`port` while the block runs (streams still open are cut after 1 s)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(30):
            while not server.started:
                await anyio.sleep(0.02)
        try:
            yield
        finally:
            server.should_exit = True


class Restartable:
    """A gateway on one port that a test stops and starts again (a restart) while its clients stay open.

    Each run is a task of `tg`, so a client opened while one run serves may outlive it.
    """

    def __init__(self, settings: GatewaySettings, tg: TaskGroup) -> None:
        self.settings, self.tg, self.port = settings, tg, free_port()
        self._stop: anyio.Event | None = None
        self._stopped: anyio.Event | None = None

    async def start(self) -> Gateway:
        self._stop, self._stopped = anyio.Event(), anyio.Event()
        gateway: Gateway = await self.tg.start(self._run, self._stop, self._stopped)
        return gateway

    async def stop(self) -> None:
        assert self._stop is not None and self._stopped is not None
        self._stop.set()
        await self._stopped.wait()

    async def _run(self, stop: anyio.Event, stopped: anyio.Event, *, task_status: TaskStatus[Gateway]) -> None:
        try:
            async with serving(self.settings, self.port) as gateway:
                task_status.started(gateway)
                await stop.wait()
        finally:
            stopped.set()


@asynccontextmanager
async def fixture_over_http(
    flag: str = "--http", port: int | None = None, *, script: Path = FIXTURE, args: tuple[str, ...] = ()
) -> AsyncIterator[str]:
    """The fixture server (or another test server) as a separate process serving Streamable HTTP (or SSE) on
    127.0.0.1; yields its URL."""
    port = port or free_port()
    process = await anyio.open_process(
        [sys.executable, str(script), flag, str(port), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with anyio.fail_after(20):
            while True:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                except OSError:
                    await anyio.sleep(0.05)
                    continue
                await stream.aclose()
                break
        yield f"http://127.0.0.1:{port}/mcp" if flag == "--http" else f"http://127.0.0.1:{port}/sse"
    finally:
        # SIGKILL: uvicorn's graceful stop would wait for the hub's open streams, and this is a crash anyway.
        process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


@pytest.fixture(scope="session")
async def fixture_http_url() -> AsyncIterator[str]:
    async with fixture_over_http() as url:
        yield url


@pytest.fixture(scope="session")
async def gateway(tmp_path_factory: pytest.TempPathFactory, fixture_http_url: str) -> AsyncIterator[Gateway]:
    """One gateway for the tests that leave it as they found it: `fx` (stdio), `web` (HTTP), `time` (PyPI)."""
    web = {"url": fixture_http_url, "cost_per_call_usd": 0.002}
    servers = {"fx": fixture_server(timeout=5), "web": web, "time": time_server()}
    settings = hub_settings(
        tmp_path_factory.mktemp("hub"),
        servers,
        mcp={"page_size": 3, "max_body_bytes": 65536, "max_upstream_message_bytes": 65536},
    )
    async with serving(settings) as started:
        yield started
