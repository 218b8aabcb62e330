"""Budgets and rate limits through the LLM proxy end to end: counted at the mock provider, on one gateway and on
two gateway processes sharing Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from aiohttp import web

from tests.conftest import REDIS_URL, require_service
from tests.llm_proxy.conftest import serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider
from toolpolicy.store.ledger import SpendScope

pytestmark = pytest.mark.anyio
KEY = "isk-e2e-limited"
PRICING = {"mock/priced": {"input": 0, "output": 1000, "max_output": 10}}  # 10 output tokens = $0.01


def limited(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "limited", "team": "dev", "value": KEY, "models": ["mock/*"], **fields}]


def providers(mock: MockProvider) -> dict[str, Any]:
    return {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}}


async def costs_a_cent(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    await asyncio.sleep(0.005)  # long enough for requests to overlap at the gateway
    message = {"role": "assistant", "content": "ok"}
    return web.json_response(
        {
            "id": "chatcmpl-cent",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 10, "total_tokens": 13},
        }
    )


async def fire(urls: list[str], count: int, model: str) -> list[httpx2.Response]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    limits = httpx2.Limits(max_connections=100)
    async with httpx2.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{urls[index % len(urls)]}/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {KEY}"},
                )
                for index in range(count)
            )
        )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


async def test_exactly_the_request_limit_reaches_the_provider(
    tmp_path: Path, mock: MockProvider, redis_url: str | None
) -> None:
    config = settings_for(
        tmp_path, providers(mock), redis=redis_url, virtual_keys=limited(rate_limit={"requests": "50/1d"})
    )
    async with serve_gateway(config) as gateway:
        responses = await fire([gateway.url], 200, "mock/model")
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 50 and statuses.count(429) == 150
    assert len(mock.seen) == 50
    refused = next(response for response in responses if response.status_code == 429)
    assert "rate limit key/limited requests 50/1d: 50 of 50 used" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1


async def test_a_budget_holds_when_a_hundred_requests_race(
    tmp_path: Path, mock: MockProvider, redis_url: str | None
) -> None:
    config = settings_for(
        tmp_path,
        providers(mock),
        redis=redis_url,
        pricing=PRICING,
        virtual_keys=limited(budgets=[{"max_usd": 0.5, "period": "1d"}]),
    )
    mock.queue(*[costs_a_cent] * 100)
    async with serve_gateway(config) as gateway:
        responses = await fire([gateway.url], 100, "mock/priced")
        await gateway.governance.spend.flush()
        key = await gateway.governance.keys.resolve(KEY)
        spent = await gateway.governance.ledger.total(SpendScope(key_id=key.key_id), _epoch())
    passed = sum(response.status_code == 200 for response in responses)
    assert passed == len(mock.seen) == 50
    assert spent == Decimal("0.50")
    refused = [response for response in responses if response.status_code == 429]
    assert refused and "budget key/limited 1d: $0.50 spent of $0.50" in refused[-1].json()["error"]["message"]


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    async with httpx2.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the gateway process exited"
            try:
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy")


@pytest.mark.redis
@pytest.mark.parametrize("layout", ["two serve processes", "one serve with --workers 2"])
async def test_replicas_sharing_redis_allow_exactly_the_limit(tmp_path: Path, mock: MockProvider, layout: str) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    config = {
        "store": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "redis": REDIS_URL,
        "providers": providers(mock),
        "customers": [{"name": "acme"}],
        "teams": [{"name": "dev", "customer": "acme"}],
        "virtual_keys": limited(rate_limit={"requests": "50/1d"}),
    }
    path = tmp_path / "isthmus.yaml"
    path.write_text(yaml.safe_dump(config))
    binary = str(Path(sys.executable).parent / "isthmus")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISTHMUS_")}
    workers = layout.endswith("--workers 2")
    ports = [_free_port()] if workers else [_free_port(), _free_port()]
    processes: list[subprocess.Popen[bytes]] = []
    log = (tmp_path / "gateways.log").open("wb")
    try:
        for port in ports:
            command = [binary, "serve", "--config", str(path), "--port", str(port), "--log-level", "warning"]
            command += ["--workers", "2"] if workers else []
            processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log))
            # One after the other: the first migrates and seeds the shared store.
            await _wait_healthy(f"http://127.0.0.1:{port}", processes[-1])
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        responses = await fire(urls, 200, "mock/model")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
        log.close()
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 50 and statuses.count(429) == 150
    # With counters per process each replica (or worker) would have let up to 50 through on its own.
    assert len(mock.seen) == 50
