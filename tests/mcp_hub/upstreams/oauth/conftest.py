"""An OAuth-protected MCP server and its authorization server on loopback, and a gateway in front of them with an
injected clock (`Clock`): no test waits for a token to expire."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.mcp_hub.conftest import Gateway, free_port, hub_settings, served, serving
from tests.servers.oauth_upstream import LoopbackAuthServer, SeenHeaders, protected_mcp

KEY_A = "isk-oauth-alice"
KEY_B = "isk-oauth-bob"
ENCRYPTION_KEY = base64.b64encode(os.urandom(32)).decode()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class World:
    clock: Clock
    auth: LoopbackAuthServer
    auth_url: str
    mcp_url: str
    upstream: SeenHeaders
    tmp_path: Path

    @asynccontextmanager
    async def gateway(self, auth: dict[str, Any], **server: Any) -> AsyncIterator[Gateway]:
        """A gateway serving the protected server as `secure` (`auth:` as given) to keys A and B."""
        port = free_port()
        keys = (
            {"name": "alice-key", "value": KEY_A, "mcp": {"secure": ["*"]}},
            {"name": "bob-key", "value": KEY_B, "mcp": {"secure": ["*"]}},
        )
        settings = hub_settings(
            self.tmp_path,
            {"secure": {"url": self.mcp_url, "auth": auth, "timeout": 10, **server}},
            keys=keys,
            upstream_oauth={"public_url": f"http://127.0.0.1:{port}", "encryption_key": ENCRYPTION_KEY},
            listen=f"127.0.0.1:{port}",
        )
        async with serving(settings, port, clock=self.clock) as gateway:
            yield gateway


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = Clock()
    auth = LoopbackAuthServer(clock)
    async with served(auth.app()) as auth_url:
        auth.base_url = auth_url
        port = free_port()
        mcp_url = f"http://127.0.0.1:{port}/mcp"
        upstream = protected_mcp(auth, auth_url, mcp_url)
        async with served(upstream, port):
            yield World(clock, auth, auth_url, mcp_url, upstream, tmp_path)


async def ready(gateway: Gateway, server: str = "secure") -> None:
    """Until `server` is connected (bounded)."""
    with anyio.fail_after(15):
        while gateway.hub.upstreams[server].health.state != "ready":
            await anyio.sleep(0.02)


async def oauth_audit(gateway: Gateway) -> list[dict[str, Any]]:
    from toolpolicy.store.audit_log import AuditQuery

    await gateway.governance.audit.flush()
    rows, _ = await gateway.governance.audit_log.query(AuditQuery(kind="upstream_oauth"))
    return rows
