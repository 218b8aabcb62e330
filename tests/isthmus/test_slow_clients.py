"""`isthmus serve` against slow and flooding clients: a real server process, raw sockets.

Each wait is bounded generously (a socket timeout, or `eventually`): a connection the server never closes fails the
test; how fast it closes is not asserted.
"""

from __future__ import annotations

import http.client
import resource
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.isthmus.test_cli import ADMIN_KEY, Server, _env, eventually, write_config

PATIENCE = 30.0
"""Seconds a test waits for the server to close a connection before failing: far beyond every configured timeout."""
SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Slow: "
BODY_PENDING = (
    f"POST /admin/customers HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
).encode()
"""A request head whose handler (past its authentication) waits for a body of 100 bytes."""
StartServer = Callable[..., AbstractContextManager[Server]]


@pytest.fixture
def start_server(tmp_path: Path) -> StartServer:
    @contextmanager
    def start(server_block: str, *args: str) -> Iterator[Server]:
        config = write_config(tmp_path, f"admin_key: {ADMIN_KEY}\nserver:\n{server_block}")
        server = Server(tmp_path, ["--config", str(config), "--log-level", "warning", *args], _env()).start()
        try:
            yield server
        finally:
            server.stop()

    return start


def health(server: Server) -> int:
    """The status of `GET /health` on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=PATIENCE)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status
    finally:
        connection.close()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket timeout fails the test if it never
    does)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)  # a socket with a timeout would wait for something to read
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:  # nothing to read yet: still open
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(PATIENCE)


@contextmanager
def closing(socks: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_a_request_head_that_never_ends_gets_408_and_is_closed(start_server: StartServer) -> None:
    with start_server("  header_timeout: 0.5\n") as server:
        with closing([connect(server), connect(server)]) as (silent, slow):
            slow.sendall(SLOW_HEAD)
            assert read_until_closed(slow).startswith(b"HTTP/1.1 408 ")
            # A client that connects and sends nothing at all is closed too.
            assert read_until_closed(silent).startswith(b"HTTP/1.1 408 ")
        assert health(server) == 200


def test_every_worker_closes_a_head_that_never_ends(start_server: StartServer) -> None:
    with start_server("  header_timeout: 0.5\n", "--workers", "2") as server:
        with closing([connect(server) for _ in range(8)]) as slow:
            for sock in slow:
                sock.sendall(SLOW_HEAD)
            assert all(read_until_closed(sock).startswith(b"HTTP/1.1 408 ") for sock in slow)


def test_the_next_request_on_a_kept_alive_connection_has_a_head_deadline_too(
    start_server: StartServer,
) -> None:
    with start_server("  header_timeout: 0.5\n  keep_alive_timeout: 600\n") as server:
        with closing([connect(server)]) as (sock,):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
            first = b""
            while not first.endswith(b"}"):  # the whole JSON answer
                first += sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            sock.sendall(SLOW_HEAD)
            assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_a_kept_alive_connection_idle_past_keep_alive_timeout_is_closed_after_each_of_its_requests(
    start_server: StartServer,
) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n"
    with start_server("  header_timeout: 600\n  keep_alive_timeout: 0.3\n") as server:
        with closing([connect(server)]) as (sock,):
            # The second request comes as the first is answered: the idle deadline the first response set is
            # cleared, and set again by the second response.
            sock.sendall(request)
            first = b""
            while not first.endswith(b"}"):
                first += sock.recv(65536)
            sock.sendall(request)
            rest = read_until_closed(sock)  # the second answer, then the close once the connection is idle
    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 200 ") and rest.count(b"HTTP/1.1 ") == 1


def test_a_stalled_body_gets_408_and_is_closed(start_server: StartServer) -> None:
    with start_server("  body_timeout: 0.5\n") as server:
        with closing([connect(server)]) as (sock,):
            sock.sendall(BODY_PENDING + b'{"name": ')
            assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_health_answers_while_thousands_of_slow_connections_come_past_the_cap(
    start_server: StartServer,
) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    attempts = min(2000, soft - 100)
    cap = attempts // 4
    with start_server(f"  header_timeout: 600\n  max_connections: {cap}\n") as server:
        with closing([]) as slow:
            for _ in range(attempts):
                slow.append(connect(server))
                slow[-1].sendall(SLOW_HEAD)
            # Each new connection past the cap replaced the oldest slow one, so the gateway still takes requests.
            assert health(server) == 200
            eventually(
                lambda: sum(not closed_by_server(sock) for sock in slow) <= cap,
                timeout=PATIENCE,
                what=f"the server to hold at most {cap} connections",
            )
            assert not closed_by_server(slow[-1])


def busy_connections(server: Server, count: int) -> list[socket.socket]:
    """`count` connections each in the middle of a request: its head sent, its body still to come, and the handler
    waiting for it (the server says `100 Continue` when the handler first reads the body)."""
    socks = [connect(server) for _ in range(count)]
    for sock in socks:
        sock.sendall(BODY_PENDING.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 ")
    return socks


def test_a_connection_past_the_cap_gets_503_when_every_connection_is_busy(start_server: StartServer) -> None:
    with start_server("  max_connections: 4\n  body_timeout: 600\n") as server:
        with closing(busy_connections(server, 4)) as busy:
            with closing([connect(server)]) as (extra,):
                assert read_until_closed(extra).startswith(b"HTTP/1.1 503 ")
            assert not any(closed_by_server(sock) for sock in busy)


def test_requests_past_max_requests_get_503(start_server: StartServer) -> None:
    with start_server("  max_requests: 2\n  body_timeout: 600\n") as server:
        with closing(busy_connections(server, 2)):
            assert health(server) == 503
        eventually(lambda: health(server) == 200, timeout=PATIENCE, what="/health")
