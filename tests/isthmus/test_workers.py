"""`isthmus serve --workers N`: every worker listens on a socket of its own, so connections spread over them."""

from __future__ import annotations

import pickle
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.workers import ReusePortListeners
from tests.isthmus.test_cli import READY_TIMEOUT, Server, _env, http


def _listening(port: int) -> int:
    """TCP sockets in LISTEN state on `port` (Linux's /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
            count += 1
    return count


@pytest.fixture
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_each_unpickling_binds_a_socket_of_its_own_on_the_shared_port(free_port: int) -> None:
    listeners = ReusePortListeners("127.0.0.1", free_port)
    assert list(listeners) == []  # nothing is bound in the supervisor
    first, second = pickle.loads(pickle.dumps(listeners)), pickle.loads(pickle.dumps(listeners))
    sockets = [*first, *second]
    try:
        assert len(sockets) == 2 and sockets[0].fileno() != sockets[1].fileno()
        for sock in sockets:
            assert sock.getsockname() == ("127.0.0.1", free_port)
            sock.listen()
        assert _listening(free_port) == 2
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Server]:
    config = tmp_path / "isthmus.yaml"
    config.write_text(f"store: sqlite+aiosqlite:///{tmp_path / 'gw.db'}\n")
    server = Server(tmp_path, ["--config", str(config), "--workers", "2"], _env()).start()
    try:
        yield server
    finally:
        server.stop()


def _wait_for_listeners(server: Server, count: int) -> None:
    """Until `count` sockets listen on the server's port (workers start one by one); a bound for a hung start only."""
    deadline = time.monotonic() + READY_TIMEOUT
    while _listening(server.port) < count:
        if time.monotonic() > deadline:
            listening = _listening(server.port)
            pytest.fail(f"{listening} of {count} workers listening after {READY_TIMEOUT}s:\n{server.stderr}")
        time.sleep(0.05)


def test_two_workers_each_listen_and_serve(two_workers: Server) -> None:
    _wait_for_listeners(two_workers, 2)
    assert _listening(two_workers.port) == 2
    for _ in range(8):  # fresh connections, spread over both sockets by the kernel
        assert http("GET", f"{two_workers.url}/health").status == 200
    assert "Traceback" not in two_workers.stderr


def test_a_port_in_use_still_fails_at_once(tmp_path: Path, free_port: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        server = Server(tmp_path, ["--workers", "2"], _env(), port=free_port)
        with pytest.raises(pytest.fail.Exception, match="exited"):
            server.start()
