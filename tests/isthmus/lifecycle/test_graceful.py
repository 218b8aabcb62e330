"""Graceful operation in process: the drain flag, bounded shutdown steps, and a stdio upstream that will not exit."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from starlette.routing import BaseRoute

from isthmus.app import create_app
from isthmus.lifecycle import process_signals, settle
from tests.isthmus.conftest import ADMIN_KEY, base_settings
from toolpolicy.audit import AuditRecord
from toolpolicy.runtime import Governance
from toolpolicy.store.audit_log import AuditLog, AuditQuery

pytestmark = pytest.mark.anyio
STUBBORN = Path(__file__).parents[2] / "servers" / "stubborn_server.py"
HANG_GUARD = 60  # seconds: a hang fails the test instead of holding the suite; no outcome depends on it


class NeverStops:
    """A component whose stop shields itself and never returns (what an SDK transport's clean-up can do)."""

    name = "never-stops"

    def __init__(self) -> None:
        self.stop_entered = anyio.Event()

    def routes(self) -> list[BaseRoute]:
        return []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stop_entered.set()
        with anyio.CancelScope(shield=True):
            await anyio.Event().wait()

    def readiness(self) -> dict[str, Any]:
        return {"status": "ok"}


async def test_ready_answers_503_from_the_moment_the_replica_drains(tmp_path: Path) -> None:
    settings = base_settings(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    app = create_app(settings, components=[])
    transport = httpx2.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx2.AsyncClient(transport=transport, base_url="http://gw") as c:
        assert (await c.get("/ready")).status_code == 200
        app.state.lifecycle.begin_drain()
        ready = await c.get("/ready")
        assert ready.status_code == 503 and ready.json() == {"status": "draining"}
        assert (await c.get("/health")).status_code == 200  # alive: liveness probes must not restart it
        refused = await c.post("/admin/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert refused.status_code == 400 and "shutting down" in refused.json()["error"]["message"]


async def test_sigterm_marks_the_replica_draining_before_the_servers_own_handler_runs() -> None:
    seen: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: seen.append("server"))
    try:
        with process_signals(lambda: seen.append("drain"), lambda: seen.append("reload")):
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGHUP)
            with anyio.fail_after(HANG_GUARD):
                while "reload" not in seen:  # SIGHUP goes through the event loop
                    await anyio.sleep(0)
        assert seen == ["drain", "server", "reload"]
        assert signal.getsignal(signal.SIGTERM) is not previous  # restored to the server's own on leaving
    finally:
        signal.signal(signal.SIGTERM, previous)


async def test_a_step_that_never_finishes_is_abandoned_and_reported() -> None:
    never = NeverStops()
    assert not await settle("the test step", never.stop(), 0.05)
    assert never.stop_entered.is_set()


async def test_shutdown_completes_and_flushes_the_audit_trail_past_a_component_that_never_stops(
    tmp_path: Path,
) -> None:
    settings = base_settings(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", server={"stop_timeout": 0.2})
    never = NeverStops()
    app = create_app(settings, components=[never])
    governance: Governance = app.state.governance
    with anyio.fail_after(HANG_GUARD):
        async with app.router.lifespan_context(app):
            governance.audit.emit(
                AuditRecord(
                    request_id="before-shutdown",
                    kind="authorize",
                    target="x",
                    decision="allow",
                    status=200,
                    latency_ms=1.0,
                )
            )
    assert never.stop_entered.is_set() and app.state.lifecycle.abandoned
    log = AuditLog(governance.store)  # the store was closed; it reopens on use
    try:
        records = [record async for record in log.export(AuditQuery())]
    finally:
        await governance.store.close()
    assert [r["request_id"] for r in records if r["kind"] == "authorize"] == ["before-shutdown"]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_shutdown_ends_stdio_upstreams_that_ignore_stdin_close_and_sigterm(tmp_path: Path) -> None:
    pidfiles = {name: tmp_path / f"{name}.pid" for name in ("docs", "stubborn")}
    servers = {name: {"command": sys.executable, "args": [str(STUBBORN), str(path)]} for name, path in pidfiles.items()}
    settings = base_settings(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", mcp_servers=servers)
    app = create_app(settings)
    with anyio.fail_after(HANG_GUARD):
        async with app.router.lifespan_context(app):
            hub = next(part for part in app.state.components if part.name == "mcp")
            while {server["state"] for server in hub.readiness()["servers"].values()} != {"ready"}:
                await anyio.sleep(0.02)
            pids = [int(path.read_text()) for path in pidfiles.values()]
            assert all(_running(pid) for pid in pids)
    assert not app.state.lifecycle.abandoned  # the hub's own escalation (stdin, SIGTERM, SIGKILL) was enough
    for pid in pids:
        assert not _running(pid)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
