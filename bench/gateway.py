"""Isthmus under test: its config for each variant, and starting it against the mock upstreams.

Variants (each a fresh process with a fresh SQLite store):

- `isthmus`: a virtual key allowed the mock model and the mock MCP server, no limits, counters in process;
- `isthmus+gov`: the same key under a team and a customer, each with budgets, the key with budgets and request,
  token and tool-call rate limits, a per-call MCP cost, prices for the mock model, and counters in Redis;
- `isthmus+otel`: the plain variant with tracing on, exporting every span to the benchmark's OTLP sink;
- `isthmus-stdio`: the plain variant with the mock MCP server as a stdio child (`bench.mock_mcp_stdio`);
- `isthmus-w2`: the plain variant served by `isthmus serve --workers 2`, with its counters in Redis (the
  configuration `--workers` is meant for);
- `isthmus+guard`: the plain variant with guardrails on every surface by default: `secrets` (block) and every `pii`
  entity (redact), so each request's input and its answer (streamed or not) are scanned.

Limits are set high enough never to trip: the figures measure the cost of checking them, not of denials.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import loop_lag
from bench.procs import REPO, Proc, Processes, StartError, free_port, fresh_store

PROVIDER = "mock"
MCP_SERVER = "mock"
HUGE_BUDGET = 1_000_000.0
HUGE_RATE = "1000000000/1m"


@dataclass(frozen=True)
class Variant:
    name: str
    governance: bool = False
    telemetry: bool = False
    stdio: bool = False
    """The MCP upstream is the stdio mock, started by the gateway, instead of the HTTP mock."""
    workers: int = 1
    guardrails: bool = False


PLAIN = Variant("isthmus")
GOVERNED = Variant("isthmus+gov", governance=True)
TRACED = Variant("isthmus+otel", telemetry=True)
STDIO = Variant("isthmus-stdio", stdio=True)
WORKERS = Variant("isthmus-w2", workers=2)
GUARDED = Variant("isthmus+guard", guardrails=True)
VARIANTS = (PLAIN, GOVERNED, TRACED, STDIO, WORKERS, GUARDED)
GUARDRAILS = [
    {"name": "no-secrets", "detect": "secrets", "action": "block", "default": True},
    {"name": "pii", "detect": "pii", "action": "redact", "default": True},
]


@dataclass(frozen=True)
class Upstreams:
    llm: str
    """Base URL of the mock provider (without `/v1`)."""
    mcp: str
    """Base URL of the mock MCP server (without `/mcp`)."""
    redis: str | None = None
    otlp: str | None = None


def config(
    variant: Variant, port: int, store: Path, key: str, upstreams: Upstreams, *, lag_probe: bool = False
) -> dict[str, Any]:
    """The gateway's YAML config, as data; `lag_probe` probes its event loop every `loop_lag.PROBE_INTERVAL` (not for
    `bench.cpu_cost`, whose other tree may be older than the setting)."""
    key_entry: dict[str, Any] = {
        "name": "bench",
        "team": "bench",
        "value": key,
        "models": [f"{PROVIDER}/*"],
        "mcp": {MCP_SERVER: ["*"]},
    }
    data: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "store": f"sqlite+aiosqlite:///{store}",
        "admin_key": secrets.token_hex(16),
        "metrics_token": secrets.token_hex(16),
        "telemetry": {"loop_lag_interval": loop_lag.PROBE_INTERVAL} if lag_probe else {},
        "providers": {
            PROVIDER: {"kind": "openai", "base_url": f"{upstreams.llm}/v1", "keys": [{"value": "sk-mock"}]},
        },
        "mcp_servers": {MCP_SERVER: {"url": f"{upstreams.mcp}/mcp"}},
        "customers": [{"name": "bench"}],
        "teams": [{"name": "bench", "customer": "bench"}],
        "virtual_keys": [key_entry],
    }
    if variant.stdio:
        data["mcp_servers"][MCP_SERVER] = {
            "command": sys.executable,
            "args": ["-m", "bench.mock_mcp_stdio"],
            "env": {"PYTHONPATH": str(REPO)},
        }
    if variant.workers > 1:
        if upstreams.redis is None:
            raise ValueError("the workers variant needs Redis")
        data["redis"] = upstreams.redis
    if variant.governance:
        if upstreams.redis is None:
            raise ValueError("the governance variant needs Redis")
        data["redis"] = upstreams.redis
        data["pricing"] = {f"{PROVIDER}/*": {"input": 0.15, "output": 0.6, "max_output": 1024}}
        data["mcp_servers"][MCP_SERVER]["cost_per_call_usd"] = 0.000001
        data["customers"][0]["budgets"] = [{"max_usd": HUGE_BUDGET, "period": "1M"}]
        data["teams"][0]["budgets"] = [{"max_usd": HUGE_BUDGET, "period": "1d", "rolling": True}]
        key_entry["budgets"] = [{"max_usd": HUGE_BUDGET}]
        key_entry["rate_limit"] = {"requests": HUGE_RATE, "tokens": HUGE_RATE}
        key_entry["mcp_rate_limit"] = {"calls": HUGE_RATE, "per_server": {MCP_SERVER: HUGE_RATE}}
    if variant.guardrails:
        data["guardrails"] = GUARDRAILS
    if variant.telemetry:
        if upstreams.otlp is None:
            raise ValueError("the telemetry variant needs the OTLP sink")
        data["telemetry"].update(otlp_endpoint=upstreams.otlp, sample_ratio=1.0)
    return data


@dataclass
class Gateway:
    variant: Variant
    proc: Proc
    key: str
    metrics_token: str


def serve_command(config_path: Path, workers: int = 1) -> list[str]:
    """`isthmus serve` from the benchmark's own environment."""
    script = Path(sys.executable).parent / "isthmus"
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "isthmus.cli"]
    extra = ["--workers", str(workers)] if workers > 1 else []
    return [*launcher, "serve", "--config", str(config_path), "--log-level", "warning", *extra]


def start(processes: Processes, variant: Variant, upstreams: Upstreams, work: Path, timeout: float = 60) -> Gateway:
    """Start the variant and wait until it is healthy and its MCP upstream is connected."""
    port = free_port()
    directory = work / variant.name.replace("+", "-")
    directory.mkdir(parents=True, exist_ok=True)
    key = "isk-bench-" + secrets.token_hex(16)
    path = directory / "isthmus.yaml"
    data = config(variant, port, fresh_store(directory / "isthmus.db"), key, upstreams, lag_probe=variant.workers == 1)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = processes.start(variant.name, serve_command(path, variant.workers), port=port, cwd=directory)
    proc.wait_ready(timeout, "/health")
    _wait_mcp_connected(proc, timeout)
    wait_listening(proc, variant.workers, timeout)
    return Gateway(variant, proc, key, data["metrics_token"])


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on `port` (each `--workers` worker listens on its own once started)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                count += 1
    return count


def wait_listening(proc: Proc, workers: int, timeout: float) -> None:
    """With several workers, /health answers once the first is up: wait for all of them to listen."""
    if workers < 2 or proc.port is None:
        return
    deadline = time.monotonic() + timeout
    while listening_sockets(proc.port) < workers:
        if time.monotonic() > deadline:
            raise StartError(f"{proc.name}: {listening_sockets(proc.port)} of {workers} workers listening")
        time.sleep(0.2)


def _wait_mcp_connected(proc: Proc, timeout: float) -> None:
    """`/ready` lists the hub's upstreams; wait for ours to be `ready` (a gateway without the hub passes at once)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(proc.url + "/ready", timeout=2) as answer:
                last = json.loads(answer.read())
        except urllib.error.HTTPError as exc:  # 503 while not ready: its body still says why
            last = json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = repr(exc)
        hub = last.get("mcp") if isinstance(last, dict) else None
        if isinstance(last, dict) and (
            hub is None or hub.get("servers", {}).get(MCP_SERVER, {}).get("state") == "ready"
        ):
            return
        time.sleep(0.2)
    raise StartError(f"{proc.name}: the MCP upstream did not connect within {timeout:g}s; /ready said {last}")
