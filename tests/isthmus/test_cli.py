"""End-to-end tests of the `isthmus` command, run as real subprocesses against a SQLite store in a temp dir."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from toolpolicy.store.engine import HEAD_REVISION

CLI_TIMEOUT = 30.0
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
HTTP_TIMEOUT = 5.0
ADMIN_KEY = "test-admin-key"


def _isthmus() -> str:
    beside = Path(sys.executable).parent / "isthmus"
    found = str(beside) if beside.exists() else shutil.which("isthmus")
    if found is None:
        pytest.skip("the isthmus command is not installed")
    return found


def _env(**extra: str) -> dict[str, str]:
    """The test process' environment without any ISTHMUS_* variable, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ISTHMUS_")}
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_isthmus(), *args],
        cwd=cwd,
        env=env if env is not None else _env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def write_config(directory: Path, text: str, name: str = "isthmus.yaml") -> Path:
    path = directory / name
    path.write_text(f"store: sqlite+aiosqlite:///{directory / 'gw.db'}\n{text}", encoding="utf-8")
    return path


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


def http(
    method: str, url: str, *, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Response:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as reply:
            status, raw, reply_headers = reply.status, reply.read(), dict(reply.headers)
    except urllib.error.HTTPError as error:
        with error:
            status, raw, reply_headers = error.code, error.read(), dict(error.headers)
    return Response(status, json.loads(raw) if raw else None, {k.lower(): v for k, v in reply_headers.items()})


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def eventually(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `check` until it is true, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Server:
    """One `isthmus serve` process; its output goes to files so a full pipe can never block it."""

    cwd: Path
    args: list[str]
    env: dict[str, str]
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return (self.cwd / f"serve-{self.port}.err").read_text(encoding="utf-8", errors="replace")

    def start(self) -> Server:
        with (
            open(self.cwd / f"serve-{self.port}.out", "wb") as out,
            open(self.cwd / f"serve-{self.port}.err", "wb") as err,
        ):
            self.process = subprocess.Popen(
                [_isthmus(), "serve", *self.args, "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"isthmus serve exited with {self.process.returncode}:\n{self.stderr}")
            try:
                if http("GET", f"{self.url}/health").status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"isthmus serve was not healthy after {READY_TIMEOUT}s:\n{self.stderr}")
            time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal the server and wait for it to exit (killing it if it will not); return its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
                pytest.fail(f"isthmus serve did not stop on {sig.name}:\n{self.stderr}")
        return self.process.returncode


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers started by one test; every one still running is stopped afterwards."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=STOP_TIMEOUT)


@dataclass
class Governance:
    server: Server
    config: Path

    @property
    def cwd(self) -> Path:
        return self.server.cwd

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--config", str(self.config), cwd=self.cwd)

    def authorize(self, model: str, headers: dict[str, str]) -> Response:
        return http("POST", f"{self.server.url}/v1/authorize", body={"model": model}, headers=headers)


GATEWAY_CONFIG = f"""\
admin_key: {ADMIN_KEY}
key_cache_ttl: 0.2
customers:
  - name: acme
teams:
  - name: support
    customer: acme
"""


@pytest.fixture(scope="module")
def governance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Governance]:
    """One gateway shared by the tests of this module, stopped at the end."""
    directory = tmp_path_factory.mktemp("gateway")
    config = write_config(directory, GATEWAY_CONFIG)
    server = Server(directory, ["--config", str(config)], _env())
    try:
        server.start()
        yield Governance(server, config)
    finally:
        if server.process is not None:
            server.stop()


def _secret(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    secrets = [line.rpartition(" ")[2] for line in result.stdout.splitlines() if line.startswith("secret")]
    assert len(secrets) == 1, result.stdout
    assert secrets[0].startswith("isk-")
    return secrets[0]


def _line_of(text: str, fragment: str) -> int:
    """The 1-based line of `text` that holds `fragment` (after write_config's leading `store:` line)."""
    return 1 + next(number for number, line in enumerate(text.splitlines(), start=1) if fragment in line)


# -- isthmus check -----------------------------------------------------------------------------------------------


def test_check_accepts_a_good_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, GATEWAY_CONFIG)

    result = run_cli("check", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"{config}: OK" in result.stdout
    assert "1 customers, 1 teams" in result.stdout


BAD_CONFIG = """\
providers:
  openai:
    kind: openai
    keys:
      - value: ${ISTHMUS_TEST_UNSET_PROVIDER_KEY}
admin_kee: typo
"""

BAD_REFERENCE_CONFIG = """\
customers:
  - name: acme
teams:
  - name: support
    customer: nobody
"""


def test_check_lists_every_problem_with_its_path_and_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, BAD_CONFIG)

    result = run_cli("check", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert f"{config}: 2 problems" in result.stderr
    unset = _line_of(BAD_CONFIG, "ISTHMUS_TEST_UNSET_PROVIDER_KEY")
    assert (
        f"providers.openai.keys[0].value: environment variable ISTHMUS_TEST_UNSET_PROVIDER_KEY is not set "
        f"(line {unset})" in result.stderr
    )
    typo = _line_of(BAD_CONFIG, "admin_kee")
    assert f"admin_kee: unknown field 'admin_kee' (did you mean 'admin_key'?) (line {typo})" in result.stderr


def test_check_reports_a_team_whose_customer_is_missing(tmp_path: Path) -> None:
    config = write_config(tmp_path, BAD_REFERENCE_CONFIG, name="teams.yaml")

    result = run_cli("check", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    line = _line_of(BAD_REFERENCE_CONFIG, "customer: nobody")
    assert f"teams[0].customer: no customer named 'nobody' in customers (line {line})" in result.stderr


def test_check_of_a_missing_file_fails_without_a_traceback(tmp_path: Path) -> None:
    result = run_cli("check", "--config", str(tmp_path / "absent.yaml"), cwd=tmp_path)

    assert result.returncode == 2
    assert "config file not found" in result.stderr
    assert "Traceback" not in result.stderr


# -- isthmus serve -----------------------------------------------------------------------------------------------


def test_serve_answers_health_and_ready_and_says_what_it_runs_with(governance: Governance) -> None:
    health = http("GET", f"{governance.server.url}/health")
    assert health.status == 200
    assert health.body["status"] == "ok"

    ready = http("GET", f"{governance.server.url}/ready")
    assert ready.status == 200
    assert ready.body["status"] == "ready"
    assert ready.body["store"] == {"status": "ok", "backend": "sqlite"}

    banner = governance.server.stderr
    assert f"config: {governance.config}" in banner
    assert f"store: sqlite+aiosqlite:///{governance.cwd / 'gw.db'}" in banner
    assert "admin API: on" in banner
    assert "Traceback" not in banner


OAUTH_CONFIG = """
mcp_servers:
  github:
    url: http://127.0.0.1:9/mcp
    auth: {type: oauth, flow: authorization_code, client_id: hub}
"""


def test_serve_refuses_to_start_with_an_authorization_code_server_and_no_encryption_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, OAUTH_CONFIG)
    missing = run_cli("serve", "--config", str(config), "--port", str(_free_port()), cwd=tmp_path)
    bad_key = _env(ISTHMUS_OAUTH_ENCRYPTION_KEY="dG9vIHNob3J0")
    bad = run_cli("serve", "--config", str(config), "--port", str(_free_port()), cwd=tmp_path, env=bad_key)

    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "OAuth flow 'authorization_code' (MCP servers: github) stores token sets encrypted" in missing.stderr
    assert "set $ISTHMUS_OAUTH_ENCRYPTION_KEY" in missing.stderr
    assert bad.returncode == 1 and "decodes to 9 bytes, not 32" in bad.stderr


def test_serve_takes_the_upstream_oauth_encryption_key_from_the_environment(
    tmp_path: Path, servers: list[Server]
) -> None:
    config = write_config(tmp_path, OAUTH_CONFIG)
    env = _env(ISTHMUS_OAUTH_ENCRYPTION_KEY=os.urandom(32).hex())
    server = Server(tmp_path, ["--config", str(config)], env)
    servers.append(server)
    server.start()
    ready = http("GET", f"{server.url}/ready")
    assert ready.body["mcp"]["servers"]["github"]["state"] == "down"
    assert "no virtual key has authorized" in ready.body["mcp"]["servers"]["github"]["last_error"]


def test_serve_without_any_config_uses_isthmus_db_in_the_working_directory(
    tmp_path: Path, servers: list[Server]
) -> None:
    env = _env()
    assert "ISTHMUS_CONFIG" not in env
    server = Server(tmp_path, [], env)
    servers.append(server)
    server.start()

    health = http("GET", f"{server.url}/health")
    assert health.status == 200
    assert health.body["status"] == "ok"
    assert http("GET", f"{server.url}/ready").body["store"]["status"] == "ok"
    assert "config: no config file (defaults)" in server.stderr
    assert "store: sqlite+aiosqlite:///./isthmus.db" in server.stderr
    assert "admin API: off" in server.stderr
    assert (tmp_path / "isthmus.db").is_file()


# -- isthmus keys, against a running gateway --------------------------------------------------------------------


def test_key_lifecycle_across_processes(governance: Governance) -> None:
    secret = _secret(governance.cli("keys", "create", "demo", "--model", "openai/*"))

    allowed = governance.authorize("openai/gpt-4o-mini", bearer(secret))
    assert allowed.status == 200, allowed.body
    assert allowed.body["allowed"] is True
    assert allowed.body["key"] == "demo"
    assert allowed.body["target"] == {"kind": "model", "name": "openai/gpt-4o-mini"}
    via_x_api_key = governance.authorize("openai/gpt-4o-mini", {"x-api-key": secret})
    assert via_x_api_key.status == 200, via_x_api_key.body
    assert via_x_api_key.body["key"] == "demo"

    denied = governance.authorize("anthropic/claude", bearer(secret))
    assert denied.status == 403
    assert set(denied.body) == {"error"}
    assert denied.body["error"]["type"] == "permission_error"
    assert denied.body["error"]["code"] == "model_not_allowed"
    assert set(denied.body["error"]) == {"message", "type", "param", "code"}

    keys = http("GET", f"{governance.server.url}/admin/keys", headers=bearer(ADMIN_KEY))
    assert keys.status == 200
    demo = next(record for record in keys.body["data"] if record["name"] == "demo")
    assert demo["active"] is True
    assert demo["models"] == ["openai/*"]
    assert secret.startswith(demo["key_prefix"])
    assert "key" not in demo and "key_hash" not in demo

    revoked = governance.cli("keys", "revoke", "demo")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    # Another process changed the store: the gateway sees it once its key cache (0.2 s) expires.
    eventually(
        lambda: governance.authorize("openai/gpt-4o-mini", bearer(secret)).status == 401,
        timeout=2.0,
        what="the revoked key to be refused",
    )
    refused = governance.authorize("openai/gpt-4o-mini", {"x-api-key": secret})
    assert refused.status == 401
    assert refused.body["error"]["type"] == "authentication_error"
    assert refused.body["error"]["code"] == "key_revoked"

    old = _secret(governance.cli("keys", "create", "second", "--model", "openai/*", "--team", "support"))
    assert governance.authorize("openai/gpt-4o-mini", bearer(old)).status == 200
    rotated = governance.cli("keys", "rotate", "second")
    new = _secret(rotated)
    assert new != old
    assert "active" in rotated.stdout
    eventually(
        lambda: governance.authorize("openai/gpt-4o-mini", bearer(old)).status == 401,
        timeout=2.0,
        what="the rotated-out secret to be refused",
    )
    assert governance.authorize("openai/gpt-4o-mini", bearer(old)).body["error"]["code"] == "invalid_api_key"
    works = governance.authorize("openai/gpt-4o-mini", bearer(new))
    assert works.status == 200, works.body
    assert (works.body["key"], works.body["team"], works.body["customer"]) == ("second", "support", "acme")

    listing = governance.cli("keys", "list")
    assert listing.returncode == 0, listing.stderr
    rows = {line.split("\t")[0]: line for line in listing.stdout.splitlines()}
    assert {"demo", "second"} <= set(rows)
    assert "revoked" in rows["demo"]
    assert "team support" in rows["second"] and "\tactive\t" in rows["second"]
    assert new not in listing.stdout and secret not in listing.stdout  # only prefixes, never a whole secret

    as_json = governance.cli("keys", "list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    records = {record["name"]: record for record in json.loads(as_json.stdout)}
    assert {"demo", "second"} <= set(records)
    assert records["demo"]["active"] is False and records["demo"]["revoked_at"] is not None
    assert records["second"]["active"] is True and records["second"]["team"] == "support"
    assert new.startswith(records["second"]["key_prefix"])


def test_keys_create_json_prints_the_record_with_its_secret(governance: Governance) -> None:
    result = governance.cli("keys", "create", "json-key", "--model", "openai/*", "--json")

    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["name"] == "json-key"
    assert record["key"].startswith("isk-")
    assert governance.authorize("openai/gpt-4o", bearer(record["key"])).status == 200


def test_keys_create_refuses_an_unknown_team(governance: Governance) -> None:
    result = governance.cli("keys", "create", "orphan", "--team", "nope", "--model", "*")

    assert result.returncode == 1
    assert "team" in result.stderr and "'nope'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "isk-" not in result.stdout


def test_keys_create_refuses_a_duplicate_name(governance: Governance) -> None:
    _secret(governance.cli("keys", "create", "twice", "--model", "*"))

    again = governance.cli("keys", "create", "twice", "--model", "*")

    assert again.returncode == 1
    assert "'twice' already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert "isk-" not in again.stdout


def test_keys_revoke_of_an_unknown_key_fails(governance: Governance) -> None:
    result = governance.cli("keys", "revoke", "no-such-key")

    assert result.returncode == 1
    assert "no key named 'no-such-key'" in result.stderr
    assert "Traceback" not in result.stderr


# -- isthmus db upgrade, isthmus import-claude ---------------------------------------------------------------------


def test_db_upgrade_prints_the_revision(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")

    result = run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert HEAD_REVISION in result.stdout
    assert (tmp_path / "gw.db").is_file()
    again = run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout


CLAUDE_DESKTOP = {
    "mcpServers": {
        "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
        "Git Hub": {
            "command": "docker",
            "args": ["run", "-i", "--rm", "ghcr.io/github/github-mcp-server"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literal"},
        },
        "docs": {"url": "https://docs.example.com/mcp"},
    }
}


def test_import_claude_prints_yaml_that_passes_check(tmp_path: Path) -> None:
    source = tmp_path / "claude_desktop_config.json"
    source.write_text(json.dumps(CLAUDE_DESKTOP), encoding="utf-8")

    result = run_cli("import-claude", str(source), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#")  # notes (the rename, the literal secret) come as comments
    assert "mcp_servers:" in result.stdout
    config = write_config(tmp_path, result.stdout)
    checked = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "3 MCP servers" in checked.stdout


def test_import_claude_of_a_file_that_is_not_json_fails_cleanly(tmp_path: Path) -> None:
    source = tmp_path / "claude_desktop_config.json"
    source.write_text("{not json", encoding="utf-8")

    result = run_cli("import-claude", str(source), cwd=tmp_path)

    assert result.returncode == 1
    assert "is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


# -- audit on shutdown -------------------------------------------------------------------------------------------

AUDIT_CONFIG = f"""\
admin_key: {ADMIN_KEY}
audit:
  flush_interval: 30
virtual_keys:
  - name: auditor
    value: isk-audit-test-key
    models: ["openai/*"]
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda sig: sig.name)
def test_a_clean_shutdown_flushes_the_audit_trail(tmp_path: Path, servers: list[Server], sig: signal.Signals) -> None:
    config = write_config(tmp_path, AUDIT_CONFIG)
    first = Server(tmp_path, ["--config", str(config)], _env())
    servers.append(first)
    first.start()
    key = bearer("isk-audit-test-key")
    for model in ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude"):
        http("POST", f"{first.url}/v1/authorize", body={"model": model}, headers=key)
    # With a 30 s flush interval nothing is written yet: the records wait in the buffer.
    assert http("GET", f"{first.url}/ready").body["audit"]["pending"] == 3
    nothing_yet = http("GET", f"{first.url}/admin/audit?kind=authorize", headers=bearer(ADMIN_KEY))
    assert nothing_yet.status == 200
    assert nothing_yet.body["data"] == []

    status = first.stop(sig)

    assert status in (0, 128 + sig, -sig), first.stderr
    assert "Application shutdown complete" in first.stderr
    assert "Traceback" not in first.stderr
    second = Server(tmp_path, ["--config", str(config)], _env())
    servers.append(second)
    second.start()
    audit = http("GET", f"{second.url}/admin/audit?kind=authorize", headers=bearer(ADMIN_KEY))
    assert audit.status == 200
    records = audit.body["data"]
    assert sorted((r["target"], r["decision"]) for r in records) == [
        ("anthropic/claude", "deny"),
        ("openai/gpt-4o", "allow"),
        ("openai/gpt-4o-mini", "allow"),
    ]
    assert {r["key_name"] for r in records} == {"auditor"}
    assert {r["kind"] for r in records} == {"authorize"}
