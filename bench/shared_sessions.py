"""What a 2025-era session costs when another replica serves it: a `tools/call` on a materialised session vs local.

Two gateways in this process (uvicorn on 127.0.0.1), each with the demo server over stdio, on one private
redis-server and one SQLite store; the client is raw HTTP (`httpx2`), one request at a time, reading each SSE
response to its end. Measured, `--calls` calls each:

- `memory`: one gateway without Redis (sessions per process, events in memory): the baseline;
- `redis, local`: with Redis, the calls go to the replica that opened the session;
- `redis, materialised`: the session was opened on A, every call goes to B (which materialised it on the first);
- `first request on B`: the first call on B of each of `--sessions` sessions opened on A (reads the record,
  starts the session's task there).

Run: `.venv/bin/python bench/shared_sessions.py [--calls 500] [--sessions 50]`; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import redis.asyncio as aioredis
import uvicorn

from isthmus.app import create_app
from mcp_hub import McpHub
from toolpolicy.runtime import Governance
from toolpolicy.settings import GatewaySettings

KEY = "isk-bench-shared"
VERSION = "2025-11-25"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settings(directory: Path, redis: str | None) -> GatewaySettings:
    return GatewaySettings.model_validate(
        {
            "store": f"sqlite+aiosqlite:///{directory / 'bench.db'}",
            "redis": redis,
            "mcp_servers": {"demo": {"command": sys.executable, "args": ["-m", "mcp_hub.demo_server"]}},
            "virtual_keys": [{"name": "bench", "value": KEY, "mcp": {"demo": ["*"]}}],
        }
    )


@asynccontextmanager
async def gateway(config: GatewaySettings) -> AsyncIterator[str]:
    governance = Governance(config)
    await governance.start()
    app = create_app(config, governance=governance, components=[McpHub(governance)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await task
        await governance.stop()


@asynccontextmanager
async def redis_server(directory: Path) -> AsyncIterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    argv = [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        await asyncio.sleep(0.3)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


async def open_session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    params = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
    opened = await http.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
    opened.raise_for_status()
    session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": VERSION}
    done = await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    done.raise_for_status()
    return session


async def call(http: httpx2.AsyncClient, url: str, session: dict[str, str], request_id: int) -> float:
    """Seconds until the call's response arrived on its SSE stream."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call"}
    body["params"] = {"name": "demo__echo", "arguments": {"text": "hi"}}
    started = time.perf_counter()
    async with http.stream("POST", url, json=body, headers=session) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data:") and line[5:].strip() and json.loads(line[5:]).get("id") == request_id:
                break
    return time.perf_counter() - started


async def commands(redis: str) -> int:
    """Commands the Redis server has run so far."""
    client = aioredis.Redis.from_url(redis)
    try:
        stats: dict[str, Any] = await client.info("commandstats")
    finally:
        await client.aclose()
    return sum(int(entry["calls"]) for name, entry in stats.items() if name not in ("cmdstat_info", "cmdstat_hello"))


def row(name: str, seconds: list[float], redis_commands: float | None = None) -> str:
    ms = sorted(value * 1000 for value in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    per_call = "" if redis_commands is None else f"{redis_commands:.2f}"
    return f"| {name} | {len(ms)} | {statistics.median(ms):.2f} | {statistics.fmean(ms):.2f} | {p99:.2f} | {per_call} |"


async def main(calls: int, sessions: int) -> None:
    rows = [
        "| Calls | n | p50 ms | mean ms | p99 ms | Redis commands per call |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    auth = {"authorization": f"Bearer {KEY}", **HEADERS}
    # TCP_NODELAY: without it a request written in two pieces waits 40 ms for the delayed ACK on loopback.
    transport = httpx2.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "memory").mkdir()
        async with (
            httpx2.AsyncClient(headers=auth, timeout=30, transport=transport) as http,
            redis_server(directory) as redis,
            gateway(settings(directory / "memory", None)) as alone,
            gateway(settings(directory, redis)) as on_a,
            gateway(settings(directory, redis)) as on_b,
        ):
            # The three kinds of call take turns, so the machine's load weighs on each alike.
            kinds = {
                "memory": (alone, await open_session(http, alone)),
                "local": (on_a, await open_session(http, on_a)),
            }
            kinds["materialised"] = (on_b, await open_session(http, on_a))
            timings: dict[str, list[float]] = {kind: [] for kind in kinds}
            used: dict[str, int] = dict.fromkeys(kinds, 0)
            for number in range(-20, calls):  # the first 20 of each warm up
                for kind, (url, session) in kinds.items():
                    before = await commands(redis)
                    elapsed = await call(http, url, session, number + 100)
                    if number >= 0:
                        timings[kind].append(elapsed)
                        used[kind] += await commands(redis) - before
            rows.append(row("one process, no Redis", timings["memory"]))
            rows.append(row("Redis, on the replica that opened the session", timings["local"], used["local"] / calls))
            rows.append(
                row("Redis, on the other replica (materialised)", timings["materialised"], used["materialised"] / calls)
            )
            firsts, first_used = [], 0
            for _ in range(sessions):
                opened = await open_session(http, on_a)
                before = await commands(redis)
                firsts.append(await call(http, on_b, opened, 1))
                first_used += await commands(redis) - before
            rows.append(row("first call on the other replica (materialises it)", firsts, first_used / sessions))
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=50)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.sessions))
