"""Helpers for the budget and rate-limit tests: a governance core over a real store and a chosen counter store."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from toolpolicy.governor import Admission, Call, Usage
from toolpolicy.runtime import Governance
from toolpolicy.settings import GatewaySettings
from toolpolicy.types import ModelTarget, Principal

# $1000 per million output tokens: 10 output tokens cost exactly $0.01.
PRICING = {"mock/model": {"input": 0, "output": 1000, "max_output": 10}, "mock/free": {"input": 0, "output": 0}}
CENT = Decimal("0.01")


class Clock:
    """An injectable clock for period rollover."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def settings(store_url: str, *, redis: str | None = None, **overrides: Any) -> GatewaySettings:
    data: dict[str, Any] = {
        "store": store_url,
        "redis": redis,
        "providers": {"mock": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}, "other": {"kind": "openai"}},
        "pricing": PRICING,
        "customers": [{"name": "acme"}],
        "teams": [{"name": "support", "customer": "acme"}, {"name": "sales", "customer": "acme"}],
        "virtual_keys": [
            {"name": "alpha", "team": "support", "value": "isk-alpha", "models": ["*"], "mcp": {}},
            {"name": "beta", "team": "support", "value": "isk-beta", "models": ["*"]},
            {"name": "gamma", "team": "sales", "value": "isk-gamma", "models": ["*"]},
        ],
    }
    data.update(overrides)
    return GatewaySettings.model_validate(data)


@asynccontextmanager
async def running(
    config: GatewaySettings, connect_args: dict[str, Any], clock: Clock | None = None
) -> AsyncIterator[Governance]:
    governance = Governance(config, store_connect_args=connect_args)
    if clock is not None:
        governance.governor.clock = clock
    await governance.start()
    try:
        yield governance
    finally:
        await governance.stop()


async def principal(governance: Governance, name: str) -> Principal:
    return await governance.keys.resolve(f"isk-{name}")


async def spend(
    governance: Governance, who: Principal, *, target: str = "mock/model", provider_cost: int = 10
) -> Admission:
    """One LLM call end to end through the governor: admit, attempt, 'forward', settle at `provider_cost` tokens."""
    admission = await governance.governor.admit(
        Call(uuid.uuid4().hex, who, ModelTarget.parse(target), input_tokens=0, max_output_tokens=10)
    )
    try:
        await admission.attempt(ModelTarget.parse(target))
    except BaseException:
        await admission.release()
        raise
    await admission.settle(Usage(tokens_in=0, tokens_out=provider_cost))
    return admission


class RedisServer:
    """A private redis-server on a free port, so a test may restart it without touching the shared one."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if IN_CI:
                pytest.fail("redis-server is not installed (CI=true: the real service is required)")
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*command, "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no persistence is configured, so every counter is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
