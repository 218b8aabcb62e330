"""A gateway with `oauth:` on 127.0.0.1 (uvicorn), its issuer that loopback URL, over the demo MCP server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from isthmus.app import create_app, default_components
from isthmus.oauth import OAuthGateway
from tests.mcp_hub.conftest import free_port, uvicorn_serving
from toolpolicy.audit import AuditRecord
from toolpolicy.runtime import Governance
from toolpolicy.settings import GatewaySettings
from toolpolicy.store.audit_log import AuditQuery

ADMIN_KEY = "oauth-admin-key"
ECHO_KEY = "isk-oauth-echo-only"
FULL_KEY = "isk-oauth-full"


def oauth_settings(tmp_path: Path, port: int, **oauth: Any) -> GatewaySettings:
    return GatewaySettings.model_validate(
        {
            "listen": f"127.0.0.1:{port}",
            "store": f"sqlite+aiosqlite:///{tmp_path / 'oauth.db'}",
            "admin_key": ADMIN_KEY,
            "key_cache_ttl": 0,
            "mcp_servers": {"demo": {"command": sys.executable, "args": ["-m", "mcp_hub.demo_server"]}},
            "virtual_keys": [
                {"name": "echo-only", "value": ECHO_KEY, "mcp": {"demo": ["echo"]}},
                {"name": "full", "value": FULL_KEY, "mcp": {"demo": ["*"]}},
            ],
            "audit": {"flush_interval": 0.05},
            "oauth": {"issuer": f"http://127.0.0.1:{port}", "token_cache_ttl": 0, **oauth},
        }
    )


@dataclass
class OAuthServing:
    base_url: str
    governance: Governance
    oauth: OAuthGateway

    def http(self, **kwargs: Any) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(base_url=self.base_url, timeout=30, **kwargs)

    async def records(self, kind: str = "oauth") -> list[dict[str, Any]]:
        await self.governance.audit.flush()
        rows, _ = await self.governance.audit_log.query(AuditQuery(kind=kind, limit=500))
        return rows


@asynccontextmanager
async def serving(
    tmp_path: Path, *, port: int | None = None, clock: Any = None, **oauth: Any
) -> AsyncIterator[OAuthServing]:
    port = port or free_port()
    settings = oauth_settings(tmp_path, port, **oauth)
    governance = Governance(settings)
    await governance.start()
    gateway = OAuthGateway(governance, **({"clock": clock} if clock is not None else {}))
    app = create_app(settings, governance=governance, components=default_components(governance, gateway), oauth=gateway)
    try:
        async with uvicorn_serving(app, port):
            yield OAuthServing(f"http://127.0.0.1:{port}", governance, gateway)
    finally:
        await governance.stop()


def emitted(records: list[AuditRecord]) -> list[str]:
    return [record.details.get("event", "") for record in records]
