"""The proxy under test, served by uvicorn on 127.0.0.1 (SDK clients stream best against a real server), in front
of mock providers that the tests start on 127.0.0.1 too.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import anyio
import openai
import pytest
import uvicorn

from isthmus.app import create_app
from llm_proxy import LlmProxy
from tests.llm_proxy.mock_provider import MockProvider
from toolpolicy.audit import AuditRecord
from toolpolicy.runtime import Governance
from toolpolicy.settings import GatewaySettings

KEY = "isk-llm-test-key"
LIMITED_KEY = "isk-llm-limited-key"
FAST_LLM = {"backoff_initial": 0.001, "backoff_max": 0.05, "max_retries": 2, "breaker_failures": 50}


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the test runner owns those."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Gateway:
    url: str
    governance: Governance
    proxy: LlmProxy
    records: list[AuditRecord]

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def openai_sdk(self, key: str = KEY) -> openai.AsyncOpenAI:
        """The official openai SDK at this gateway, without its own retries."""
        return openai.AsyncOpenAI(base_url=self.v1, api_key=key, max_retries=0)

    def anthropic_sdk(self, key: str = KEY) -> anthropic.AsyncAnthropic:
        """The official anthropic SDK at this gateway (it adds `/v1` itself), without its own retries."""
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0)

    def llm_records(self) -> list[AuditRecord]:
        return [record for record in self.records if record.kind == "llm"]

    async def wait_records(self, count: int) -> list[AuditRecord]:
        """The LLM audit records once there are `count` (a stream's is emitted when the stream has ended)."""
        with anyio.fail_after(5):
            while len(self.llm_records()) < count:
                await anyio.sleep(0.01)
        return self.llm_records()


def settings_for(tmp_path: Path, providers: dict[str, Any], **overrides: Any) -> GatewaySettings:
    data: dict[str, Any] = {
        "store": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
        "providers": providers,
        "customers": [{"name": "acme"}],
        "teams": [{"name": "dev", "customer": "acme"}],
        "virtual_keys": [
            {"name": "dev-key", "team": "dev", "value": KEY, "models": ["*"]},
            {"name": "limited", "team": "dev", "value": LIMITED_KEY, "models": ["mock/allowed-*", "fast"]},
        ],
        "audit": {"flush_interval": 0.05},
        "llm": FAST_LLM,
    }
    data.update(overrides)
    return GatewaySettings.model_validate(data)


@contextlib.asynccontextmanager
async def serve_gateway(
    settings: GatewaySettings, *, seed: int = 7, direct: bool = True, store_connect_args: dict[str, Any] | None = None
) -> AsyncIterator[Gateway]:
    governance = Governance(settings, store_connect_args=store_connect_args)
    records: list[AuditRecord] = []
    emit = governance.audit.emit

    def capture(record: AuditRecord) -> None:
        records.append(record)
        emit(record)

    governance.audit.emit = capture  # type: ignore[method-assign]
    proxy = LlmProxy(governance)
    proxy.router.rng = random.Random(seed)
    app = create_app(settings, governance=governance, components=[proxy], direct=direct)
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on sockets that say they are TCP, and without it every
    # keep-alive response waits 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=2)
    server = _QuietServer(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        with anyio.fail_after(20):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield Gateway(f"http://127.0.0.1:{port}", governance, proxy, records)
        finally:
            server.should_exit = True
    sock.close()


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    provider = MockProvider()
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture
async def gateway(tmp_path: Path, mock: MockProvider) -> AsyncIterator[Gateway]:
    """The proxy over one OpenAI-compatible mock (`mock/...`), with an alias `fast` over it."""
    providers = {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}}
    settings = settings_for(tmp_path, providers, models={"fast": {"targets": ["mock/fast-model"]}})
    async with serve_gateway(settings) as started:
        yield started
