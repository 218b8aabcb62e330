"""Peer gateways, measured in the same run when `make bench-peers` has installed them.

- `litellm`: LiteLLM's proxy 1.108.7 from `.venv-peers`, offline (local cost map, telemetry off), a random master
  key, no database (so only the master key works: no per-key budgets), chat and MCP at `/mcp/`.
- `contextforge`: IBM's ContextForge 1.0.7 from `.venv-cf` with its defaults (a new upstream session per call),
  SSRF guard relaxed for loopback, rate limiter off; the mock MCP server registered as a gateway and exposed
  through a virtual server at `/servers/<id>/mcp`.
- `contextforge-stateful`: the same with `USE_STATEFUL_SESSIONS=true` and metrics recording off.

The settings are those of /work/shared/notes/anchors.md §10, where they were checked to keep every byte on loopback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Any

import yaml

from bench.gateway import Upstreams
from bench.measure import measure_path, measure_stream
from bench.procs import REPO, Processes, StartError, child_environment, free_port, fresh_store
from bench.results_model import Run
from bench.scenarios import SCENARIOS, Path, Scenario

PEERS = ("litellm", "contextforge", "contextforge-stateful")
VENVS = {"litellm": REPO / ".venv-peers", "contextforge": REPO / ".venv-cf", "contextforge-stateful": REPO / ".venv-cf"}
EXECUTABLES = {"litellm": "litellm", "contextforge": "mcpgateway", "contextforge-stateful": "mcpgateway"}
OFFLINE = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
LITELLM_OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_TELEMETRY_DISABLED": "true",
}
CF_ADMIN = "admin@example.com"


def installed(peer: str) -> bool:
    return (VENVS[peer] / "bin" / EXECUTABLES[peer]).exists()


def _version(peer: str) -> str:
    package = "litellm" if peer == "litellm" else "mcp-contextforge-gateway"
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run(
        [str(VENVS[peer] / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "?"


def _call(method: str, url: str, body: Any, token: str) -> Any:
    """One JSON REST call to a peer's admin API; StartError unless it answers 2xx."""
    host, _, rest = url.removeprefix("http://").partition("/")
    name, _, port = host.partition(":")
    if name != "127.0.0.1":
        raise StartError(f"the benchmark only targets 127.0.0.1, not {name!r}")
    connection = http.client.HTTPConnection(name, int(port), timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}
    try:
        connection.request(
            method, "/" + rest, body=json.dumps(body).encode() if body is not None else None, headers=headers
        )
        answer = connection.getresponse()
        raw = answer.read()
    finally:
        connection.close()
    if not 200 <= answer.status < 300:
        raise StartError(f"{method} {url} answered {answer.status}: {raw[:300]!r}")
    return json.loads(raw) if raw.strip() else None


def start_litellm(processes: Processes, upstreams: Upstreams, work: FilePath) -> Path:
    directory = work / "litellm"
    directory.mkdir(parents=True, exist_ok=True)
    master = "sk-" + secrets.token_hex(16)
    models = [
        {
            "model_name": name,
            "litellm_params": {"model": f"openai/{name}", "api_base": f"{upstreams.llm}/v1", "api_key": "sk-mock"},
        }
        for name in ("mock-gpt", "mock-gpt-paced")
    ]
    config = {
        "model_list": models,
        "mcp_servers": {"mock_mcp": {"url": f"{upstreams.mcp}/mcp", "transport": "http"}},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    path = directory / "litellm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [
        str(VENVS["litellm"] / "bin" / "litellm"),
        "--config",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**OFFLINE, **LITELLM_OFFLINE, "LITELLM_MASTER_KEY": master}
    proc = processes.start("litellm", argv, port=port, env=env, cwd=directory)
    proc.wait_ready(180, "/health/liveliness")
    return Path(
        "litellm",
        "peer",
        proc.url,
        mcp_path="/mcp/",
        llm_headers=(("Authorization", f"Bearer {master}"),),
        mcp_headers=(("x-litellm-api-key", f"Bearer {master}"),),
        proc=proc,
        note=f"LiteLLM {_version('litellm')}, no database (master key)",
    )


def start_contextforge(processes: Processes, upstreams: Upstreams, work: FilePath, *, stateful: bool) -> Path:
    name = "contextforge-stateful" if stateful else "contextforge"
    directory = work / name
    directory.mkdir(parents=True, exist_ok=True)
    venv = VENVS[name]
    jwt_secret = secrets.token_hex(32)
    env = {
        **OFFLINE,
        "JWT_SECRET_KEY": jwt_secret,
        "AUTH_ENCRYPTION_SECRET": secrets.token_hex(32),
        "PLATFORM_ADMIN_EMAIL": CF_ADMIN,
        "PLATFORM_ADMIN_PASSWORD": secrets.token_hex(16) + "Aa1!",
        "DATABASE_URL": f"sqlite:///{fresh_store(directory / 'cf.db')}",
        "CACHE_TYPE": "database",
        "SSRF_ALLOW_LOCALHOST": "true",
        "RATE_LIMITING_ENABLED": "false",
        "MCPGATEWAY_CATALOG_ENABLED": "false",
        "MCPGATEWAY_UI_ENABLED": "false",
        "MCPGATEWAY_ADMIN_API_ENABLED": "true",
        "LLMCHAT_ENABLED": "false",
        "OBSERVABILITY_ENABLED": "false",
        "LOG_LEVEL": "ERROR",
    }
    if stateful:
        env.update(USE_STATEFUL_SESSIONS="true", DB_METRICS_RECORDING_ENABLED="false")
    port = free_port()
    argv = [str(venv / "bin" / "mcpgateway"), "--host", "127.0.0.1", "--port", str(port)]
    proc = processes.start(name, argv, port=port, env=env, cwd=directory)
    proc.wait_ready(180, "/health")
    token_argv = [str(venv / "bin" / "python"), "-m", "mcpgateway.utils.create_jwt_token", "--username", CF_ADMIN]
    token_argv += ["--exp", "600", "--secret", jwt_secret]
    made = subprocess.run(
        token_argv, capture_output=True, text=True, timeout=60, cwd=directory, env=child_environment(env), check=False
    )
    token = made.stdout.strip().splitlines()[-1] if made.stdout.strip() else ""
    if made.returncode != 0 or not token:
        raise StartError(f"{name}: could not make a token: {made.stderr.strip()[-300:]}")
    gateway = {"name": "mock_mcp", "url": f"{upstreams.mcp}/mcp", "transport": "STREAMABLEHTTP"}
    _call("POST", f"{proc.url}/gateways", gateway, token)
    tools = _call("GET", f"{proc.url}/tools", None, token)
    # Some versions answer a bare list, others a page object.
    items = (tools.get("items") or tools.get("data") or []) if isinstance(tools, dict) else (tools or [])
    ids = [tool["id"] for tool in items if isinstance(tool, dict) and "id" in tool]
    if not ids:
        raise StartError(f"{name}: no tools were discovered from the mock MCP server: {str(tools)[:300]}")
    server = _call("POST", f"{proc.url}/servers", {"server": {"name": "bench", "associated_tools": ids}}, token)
    return Path(
        name,
        "peer",
        proc.url,
        mcp_path=f"/servers/{server['id']}/mcp",
        mcp_headers=(("Authorization", f"Bearer {token}"),),
        scenarios=frozenset({"mcp-modern", "mcp-legacy"}),
        proc=proc,
        note=f"ContextForge {_version(name)}" + (", stateful sessions" if stateful else ", defaults"),
    )


def measure(
    run: Run,
    peer: str,
    processes: Processes,
    upstreams: Upstreams,
    work: FilePath,
    args: argparse.Namespace,
    wrk: str,
    log: Callable[[str], None],
) -> None:
    scenarios: list[Scenario] = [s for s in SCENARIOS if s in args.scenarios]
    if not installed(peer):
        if args.peers == "require":
            raise StartError(f"{peer} is not installed in {VENVS[peer]} (make bench-peers)")
        return
    log(peer)
    try:
        if peer == "litellm":
            path = start_litellm(processes, upstreams, work)
        else:
            path = start_contextforge(processes, upstreams, work, stateful=peer.endswith("stateful"))
    except StartError as exc:
        for scenario in scenarios:
            run.skipped[(peer, scenario)] = f"did not start: {exc}"
        log(f"  {peer} did not start: {exc}")
        return
    assert path.proc is not None
    try:
        measure_path(run, path, [s for s in scenarios if s in path.scenarios], wrk=wrk, log=log)
        if "stream" in scenarios and "stream" in path.scenarios:
            measure_stream(run, path, count=args.streams, log=log)
        run.paths[peer].peak_rss_mib = path.proc.peak_rss_mib()
        run.paths[peer].note = path.note
    finally:
        processes.stop(path.proc)
