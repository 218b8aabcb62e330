"""`isthmus serve` as a process: SIGTERM drains (in-flight requests finish, then the audit trail is flushed and the
process exits 0), SIGHUP reloads the config in the process and in every `--workers` worker."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from pathlib import Path

import anyio
import pytest
import yaml

from tests.isthmus.lifecycle.test_reload import BOT, CHAT, Held, config
from tests.isthmus.test_cli import STOP_TIMEOUT, Response, Server, _env, http
from tests.isthmus.test_workers import _wait_for_listeners
from tests.llm_proxy.mock_provider import MockProvider

pytestmark = pytest.mark.anyio
HANG_GUARD = 60  # seconds: bounds a hang; no outcome depends on it


def write_config(tmp_path: Path, provider_url: str, **changes: object) -> Path:
    """The reload tests' config, with a drain long enough for any test to release its held request first."""
    path = tmp_path / "isthmus.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, provider_url, **{"server": {"drain_timeout": 60}, **changes})))
    return path


async def chat(server: Server, headers: dict[str, str]) -> Response:
    """A chat completion from a thread: the mock provider answering it runs on this test's event loop."""
    return await anyio.to_thread.run_sync(
        lambda: http("POST", f"{server.url}/v1/chat/completions", body=CHAT, headers=headers)
    )


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_sigterm_lets_the_request_in_flight_finish_then_flushes_and_exits(
    tmp_path: Path, mock: MockProvider
) -> None:
    held = Held()
    mock.queue(held)
    server = Server(tmp_path, ["--config", str(write_config(tmp_path, mock.url))], _env()).start()
    try:
        with anyio.fail_after(HANG_GUARD):
            in_flight = asyncio.ensure_future(chat(server, BOT))
            await held.arrived.wait()
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            while not _refuses(server.port):  # it stops accepting at once...
                await anyio.sleep(0.02)
            assert server.process.poll() is None  # ...and stays up for the request it holds
            held.release.set()
            answered = await in_flight
            code = await anyio.to_thread.run_sync(lambda: server.process.wait(STOP_TIMEOUT))  # type: ignore[union-attr]
    finally:
        server.stop()
    assert answered.status == 200 and answered.body["choices"][0]["message"]["content"]
    assert code == 0
    with sqlite3.connect(tmp_path / "gw.db") as db:  # the request's audit record was flushed before the exit
        kinds = [row[0] for row in db.execute("SELECT kind FROM audit_events WHERE status = 200")]
    assert kinds == ["llm"], kinds


async def test_sighup_reloads_the_config_of_a_single_process(tmp_path: Path, mock: MockProvider) -> None:
    path = write_config(tmp_path, mock.url)
    server = Server(tmp_path, ["--config", str(path)], _env()).start()
    try:
        new = {"authorization": "Bearer isk-reload-new"}
        assert (await chat(server, new)).status == 401
        keys = [
            {"name": "bot", "value": "isk-reload-bot", "models": ["mock/*"]},
            {"name": "new", "value": "isk-reload-new", "models": ["mock/*"]},
        ]
        write_config(tmp_path, mock.url, virtual_keys=keys)
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        with anyio.fail_after(HANG_GUARD):
            while (await chat(server, new)).status != 200:
                await anyio.sleep(0.05)
        path.write_text("virtual_keys: [{name: x, team: nobody}]\n")
        server.process.send_signal(signal.SIGHUP)
        with anyio.fail_after(HANG_GUARD):
            while "no team named 'nobody'" not in server.stderr:
                await anyio.sleep(0.05)
        assert (await chat(server, new)).status == 200
        assert server.process.poll() is None
    finally:
        assert server.stop() == 0


async def test_sighup_to_the_supervisor_reloads_every_worker(tmp_path: Path, mock: MockProvider) -> None:
    path = write_config(tmp_path, mock.url)
    server = Server(tmp_path, ["--config", str(path), "--workers", "2"], _env()).start()
    try:
        _wait_for_listeners(server, 2)
        with anyio.fail_after(HANG_GUARD):
            while server.stderr.count("Application startup complete") < 2:
                await anyio.sleep(0.05)
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        with anyio.fail_after(HANG_GUARD):
            while server.stderr.count("reload: applied") < 2:
                await anyio.sleep(0.05)
        assert server.process.poll() is None and server.stderr.count("Started server process") == 2  # none restarted
    finally:
        assert server.stop() == 0
