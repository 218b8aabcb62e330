"""Two `isthmus serve` replicas on one PostgreSQL database and one Redis, behind a real nginx with round-robin.

`cluster` (one per test package run, about 5 s to start) is what every leg uses: `cluster.url` is nginx,
`cluster.replicas[i].url` one replica directly, `cluster.restart(i)` a rolling restart step. nginx balances each
request on its own (no stickiness, a new upstream connection each time, `proxy_buffering off` for SSE) and retries
the next replica on a connection error or timeout, as a plain deployment would. Its access log records which
replica served what (`cluster.served_by()`).

A new leg needs a key: add it to `KEYS` (and an MCP server to `MCP_SERVERS` if it needs one); every leg has keys
of its own, so legs never share a limit. nginx comes from Debian's packages (`make test` installs it when missing);
without nginx or PostgreSQL the module skips, and with CI=true it fails instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI, POSTGRES_URL, require_service
from tests.isthmus.test_cli import READY_TIMEOUT, Server, _env, _free_port, http
from tests.toolpolicy.limits_support import RedisServer

ADMIN_KEY = "replicas-admin-key"
KEY_CACHE_TTL = 0.5
"""Seconds a replica caches a resolved key: the bound on how late the other replica sees a revocation."""
PAID_TOOL_COST = 0.1
"""USD each call of the `paid` server's tools costs."""

MCP_SERVERS: dict[str, dict[str, Any]] = {"demo": {}, "paid": {"cost_per_call_usd": PAID_TOOL_COST}}
"""Servers every replica serves, each the one demo server over Streamable HTTP (as remote servers are deployed)."""
ASKING = Path(__file__).parents[1] / "servers" / "asking_server.py"
"""A 2025-era server whose tools ask their client mid-call (held calls for 2026-07-28 clients), served as `asking`."""
KEYS: list[dict[str, Any]] = [
    {"name": "mcp", "value": "isk-replicas-mcp", "mcp": {"demo": ["*"]}},
    {"name": "limited", "value": "isk-replicas-limited", "models": ["echo/*"], "rate_limit": {"requests": "10/1d"}},
    {"name": "metered", "value": "isk-replicas-metered", "mcp": {"paid": ["*"]}, "budgets": [{"max_usd": 1.0}]},
    {"name": "revocable", "value": "isk-replicas-revocable", "models": ["echo/*"]},
    {"name": "breaker", "value": "isk-replicas-breaker", "models": ["flaky/*"]},
    {"name": "load", "value": "isk-replicas-load", "models": ["echo/*"], "mcp": {"demo": ["*"]}},
    {"name": "legacy", "value": "isk-replicas-legacy", "mcp": {"demo": ["*"]}},
    {"name": "held", "value": "isk-replicas-held", "mcp": {"asking": ["*"]}},
]


def require_nginx() -> str:
    """The nginx binary (Debian's `nginx-light` or `nginx`), or a skip (a failure with CI=true) naming why."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        reason = "nginx is not installed (`make test` installs Debian's nginx-light when missing)"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the real service is required)")
        pytest.skip(reason)
    return found


class FailingProvider:
    """An OpenAI-compatible provider on 127.0.0.1 that answers every request with a 500, counting them."""

    def __init__(self) -> None:
        hits = self.hits = [0]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hits[0] += 1
                self.rfile.read(int(self.headers.get("content-length", 0)))
                body = b'{"error": {"message": "provider down", "type": "server_error"}}'
                self.send_response(500)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DemoMcpServer:
    """The demo MCP server (or `command`, another test server) over Streamable HTTP on 127.0.0.1, one process for both
    replicas."""

    def __init__(self, directory: Path, command: list[str] | None = None, name: str = "demo-mcp") -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        command = command or [str(Path(sys.executable).parent / "isthmus-demo-mcp")]
        with open(directory / f"{name}.err", "wb") as err:
            command = [*command, "--http", str(self.port)]
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + READY_TIMEOUT
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the {name} server did not listen:\n{(directory / f'{name}.err').read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def gateway_config(store: str, redis: str, provider_url: str, mcp_url: str, asking_url: str) -> dict[str, Any]:
    return {
        "store": store,
        "redis": redis,
        "admin_key": ADMIN_KEY,
        "key_cache_ttl": KEY_CACHE_TTL,
        "providers": {
            "echo": {"kind": "echo"},
            "flaky": {"kind": "openai", "base_url": provider_url, "keys": [{"value": "sk-flaky"}], "models": ["m"]},
        },
        # One failure opens a breaker for longer than the test runs; no retry, so one request is one failure.
        "llm": {"max_retries": 0, "breaker_failures": 1, "breaker_cooldown": 600},
        "mcp_servers": {
            **{name: {"url": mcp_url, **server} for name, server in MCP_SERVERS.items()},
            "asking": {"url": asking_url, "protocol": "legacy"},
        },
        "customers": [{"name": "replicas"}],
        "teams": [{"name": "legs", "customer": "replicas"}],
        "virtual_keys": [{"team": "legs", **key} for key in KEYS],
    }


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format replicas '$request_method|$uri|$status|$upstream_addr|$upstream_status';
    access_log {dir}/access.log replicas;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream isthmus {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://isthmus;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


class Nginx:
    """nginx as a plain process of its own (no daemon, no master): its prefix, config and logs in `directory`."""

    def __init__(self, binary: str, directory: Path, port: int, upstream_ports: list[int]) -> None:
        self.directory = directory
        self.port = port
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=1s;" for port in upstream_ports)
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "nginx.conf"
        config.write_text(NGINX_CONF.format(dir=directory, servers=servers, port=self.port))
        command = [binary, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT
        while not _listening(self.port):
            if self.process.poll() is not None:
                pytest.fail(f"nginx exited with {self.process.returncode}:\n{self.errors}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"nginx did not listen after {READY_TIMEOUT}s:\n{self.errors}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def errors(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> list[list[str]]:
        return [line.split("|") for line in (self.directory / "access.log").read_text().splitlines()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _free_ports(count: int) -> list[int]:
    """Distinct free ports (`_free_port` twice may return one port twice, and two replicas on one port are one)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_ready(server: Server) -> None:
    """Until the replica answers `/ready` with 200; the bound is for a hung start only."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            if http("GET", f"{server.url}/ready").status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"replica on port {server.port} not ready after {READY_TIMEOUT}s:\n{server.stderr}")
        time.sleep(0.05)


@dataclass
class Cluster:
    """Two replicas, nginx in front, and what they share; see the module's docstring."""

    directory: Path
    config: Path
    nginx: Nginx
    provider: FailingProvider
    started: list[Server]
    """Every replica process started, restarts included, so the fixture stops whatever still runs."""
    replicas: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nginx.url

    def replica(self, port: int) -> Server:
        server = Server(self.directory, ["--config", str(self.config)], _env(), port=port)
        self.started.append(server)
        return server

    def restart(self, index: int) -> None:
        """One step of a rolling restart: SIGTERM the replica and wait for it to exit, start it again on its port,
        wait until it is ready, then until nginx routes to it again (nginx marks a replica it could not reach as
        down for `fail_timeout`; restarting the other one before that would leave nginx none to send to)."""
        old = self.replicas[index]
        status = old.stop()
        # uvicorn re-raises the signal once shut down, so a clean exit on SIGTERM is -15 (0 if that changes).
        assert status in (0, -signal.SIGTERM), f"replica exited with {status} on SIGTERM:\n{old.stderr}"
        for log in ("out", "err"):  # keep the old process' output beside the new one's
            path = self.directory / f"serve-{old.port}.{log}"
            path.rename(path.with_name(f"serve-{old.port}-{len(self.started)}.{log}"))
        self.replicas[index] = self.replica(old.port).start()
        wait_ready(self.replicas[index])
        self.wait_routed(self.replicas[index])

    def diagnostics(self) -> str:
        """What a failed leg's message should carry to be explained later (the fixture's directory is gone by then):
        nginx's error log, the requests it did not answer 200 with their upstream status, and the replicas' stderr
        tails, restarted processes included."""
        refused = [line for line in self.nginx.access_log() if line[2] != "200"]
        tails = [
            f"{path.name} (tail):\n{path.read_text(errors='replace')[-1500:]}"
            for path in sorted(self.directory.glob("serve-*.err"))
        ]
        nginx = [f"nginx error log:\n{self.nginx.errors[-3000:]}", f"nginx non-200 answers (last 20): {refused[-20:]}"]
        return "\n".join([*nginx, *tails])

    def wait_routed(self, server: Server) -> None:
        """Until nginx sends a request to `server` and it answers (probing with `/health` through nginx)."""
        address = f"127.0.0.1:{server.port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            http("GET", f"{self.url}/health")
            if any(line[3] == address and line[4] == "200" for line in self.nginx.access_log()[-50:]):
                return
            time.sleep(0.05)
        pytest.fail(f"nginx did not route to {address} within {READY_TIMEOUT}s:\n{self.nginx.errors[-2000:]}")

    def served_by(self, uri: str) -> dict[str, int]:
        """How many requests for `uri` each replica (`127.0.0.1:<port>`) answered, from nginx's access log."""
        counts: dict[str, int] = {}
        for _method, logged, _status, upstream, *_ in self.nginx.access_log():
            if logged == uri:
                for address in upstream.split(","):
                    counts[address.strip()] = counts.get(address.strip(), 0) + 1
        return counts


async def _on_postgres(statement: str) -> None:
    """Run one statement on the CI PostgreSQL's test database (creating or dropping the cluster's own)."""
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    binary = require_nginx()
    require_service("PostgreSQL", "127.0.0.1", 5432)
    directory = tmp_path_factory.mktemp("replicas")
    database = f"replicas_{uuid.uuid4().hex[:12]}"
    asyncio.run(_on_postgres(f'CREATE DATABASE "{database}"'))
    redis = RedisServer(directory)
    provider = FailingProvider()
    started: list[Server] = []
    nginx: Nginx | None = None
    mcp: DemoMcpServer | None = None
    asking: DemoMcpServer | None = None
    try:
        redis.start()
        mcp = DemoMcpServer(directory)
        asking = DemoMcpServer(directory, [sys.executable, str(ASKING)], "asking-mcp")
        store = POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"
        config = directory / "isthmus.yaml"
        config.write_text(yaml.safe_dump(gateway_config(store, redis.url, provider.url, mcp.url, asking.url)))
        *ports, front = _free_ports(3)
        nginx = Nginx(binary, directory / "nginx", front, ports)
        cluster = Cluster(directory, config, nginx, provider, started=started)
        for port in ports:  # one after the other: the first migrates and seeds the store
            cluster.replicas.append(cluster.replica(port).start())
            wait_ready(cluster.replicas[-1])
        yield cluster
    finally:
        for server in started:
            if server.process is not None and server.process.poll() is None:
                server.stop()
        if nginx is not None:
            nginx.stop()
        for process in (mcp, asking):
            if process is not None:
                process.stop()
        provider.close()
        redis.stop()
        asyncio.run(_on_postgres(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


# Clients of the legs: plain HTTP through nginx, so each request is balanced on its own.
MODERN = "2026-07-28"
LEGACY = "2025-06-18"
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def modern_request(method: str, params: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers of one stateless 2026-07-28 MCP request."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "replicas", "version": "0"},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**(params or {}), "_meta": meta}}
    headers = {**ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": method}
    if params is not None and "name" in params:  # tools/call and prompts/get name their target in a header too
        headers["mcp-name"] = params["name"]
    return body, headers


def legacy_request(method: str, params: dict[str, Any] | None = None, *, id: int | None = 1) -> dict[str, Any]:
    """A 2025-era JSON-RPC message (a notification when `id` is None)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if id is not None:
        message["id"] = id
    return message


def initialize_params() -> dict[str, Any]:
    return {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "replicas", "version": "0"}}


def rpc_reply(content_type: str, text: str) -> dict[str, Any]:
    """The JSON-RPC response in a JSON body or in an SSE stream's `data:` lines."""
    if content_type.startswith("text/event-stream"):
        for line in text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                message: dict[str, Any] = json.loads(line[5:])
                if "id" in message:
                    return message
        raise AssertionError(f"no JSON-RPC response in the stream: {text!r}")
    reply: dict[str, Any] = json.loads(text)
    return reply
