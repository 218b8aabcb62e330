"""How long does a slow client hold a connection, and does the gateway keep serving under a flood of them?

    .venv/bin/python -m bench.slow_clients                          # the default `server:` settings
    .venv/bin/python -m bench.slow_clients --header-timeout 1 --max-connections 500 --flood 2000

Starts `isthmus serve` (one uvicorn worker, SQLite in a temporary directory) and, from this process:
1. opens one connection that sends a request head and never finishes it, and reports when (and with what) the
   server closes it, up to `--bound` seconds;
2. opens `--flood` such connections at once, counts how many the server still holds a second later, and asks
   `GET /health` on a fresh connection, reporting its status and latency.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.gateway import serve_command
from bench.procs import LOOPBACK, Processes, free_port

SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Slow: "


def slow_head_lifetime(port: int, bound: float) -> str:
    """Send a head that never ends; say when the server closed the connection and what it sent first."""
    with socket.create_connection((LOOPBACK, port), timeout=bound) as connection:
        started = time.monotonic()
        connection.sendall(SLOW_HEAD)
        received = b""
        try:
            while chunk := connection.recv(4096):
                received += chunk
        except TimeoutError:
            return f"still open after {time.monotonic() - started:.0f} s (the bound)"
        except ConnectionResetError:
            pass
        status = received.split(b"\r\n", 1)[0].decode(errors="replace") or "nothing"
        return f"closed by the server after {time.monotonic() - started:.2f} s; it answered {status!r}"


def _closed(connection: socket.socket) -> bool:
    connection.setblocking(False)
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def flood(port: int, count: int) -> str:
    """Open `count` slow connections, then ask `/health` on a fresh one."""
    held: list[socket.socket] = []
    started = time.monotonic()
    try:
        for _ in range(count):
            try:
                connection = socket.create_connection((LOOPBACK, port), timeout=5)
                connection.sendall(SLOW_HEAD)
            except OSError:
                break
            held.append(connection)
        opened = time.monotonic() - started
        time.sleep(1.0)
        still_open = sum(not _closed(connection) for connection in held)
        asked = time.perf_counter()
        with socket.create_connection((LOOPBACK, port), timeout=10) as probe:
            probe.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
            status = probe.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
        latency = (time.perf_counter() - asked) * 1000
        return (
            f"opened {len(held)} of {count} slow connections in {opened:.1f} s; {still_open} still open after 1 s; "
            f"/health on a fresh connection: {status!r} in {latency:.1f} ms"
        )
    finally:
        for connection in held:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--header-timeout", type=float, help="server.header_timeout (default: the gateway's)")
    parser.add_argument("--max-connections", type=int, help="server.max_connections (default: the gateway's)")
    parser.add_argument("--flood", type=int, default=5000, help="slow connections opened at once")
    parser.add_argument("--bound", type=float, default=120.0, help="seconds to wait on the single slow connection")
    args = parser.parse_args()
    server: dict[str, Any] = {}
    if args.header_timeout is not None:
        server["header_timeout"] = args.header_timeout
    if args.max_connections is not None:
        server["max_connections"] = args.max_connections
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp, Processes(Path(tmp) / "logs") as processes:
        port = free_port()
        config: dict[str, Any] = {
            "listen": f"{LOOPBACK}:{port}",
            "store": f"sqlite+aiosqlite:///{tmp}/isthmus.db",
            "admin_key": secrets.token_hex(16),
        }
        if server:
            config["server"] = server
        path = Path(tmp) / "isthmus.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = processes.start("isthmus", serve_command(path), port=port, cwd=Path(tmp))
        proc.wait_ready(60, "/health")
        print(f"server settings: {server or 'defaults'}")
        print(f"one slow head: {slow_head_lifetime(port, args.bound)}")
        print(f"flood: {flood(port, args.flood)}")


if __name__ == "__main__":
    main()
