"""`isthmus serve --workers N`: uvicorn's supervisor, with a listening socket of its own in each worker.

uvicorn binds one socket in the supervisor and every worker accepts from it. An event loop woken by a new
connection accepts every connection waiting, so a client opening its connections in a burst (a pool, a load
generator) lands them all on one worker while the others idle: two workers served 16 keep-alive connections no
faster than one. With `SO_REUSEPORT` each worker listens on a socket of its own on the same port, and the kernel
spreads new connections over them by their addresses.

The supervisor stays uvicorn's (health checks, restarting a worker that dies, signals); only the sockets it hands
its workers change: `ReusePortListeners` is bound anew, in each worker, when the worker unpickles it. And SIGHUP:
uvicorn replaces every worker on it; `Supervisor` forwards it instead, so each worker reloads its configuration
in place (validated first, keeping its sessions and counters) as a single process does. SIGTERM reaches every
worker through uvicorn's own `terminate_all`, and each drains.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

logger = logging.getLogger("uvicorn.error")


def bind_reuse_port(host: str, port: int) -> list[socket.socket]:
    """One listening-ready socket on `host:port` that shares the port with the other workers' (`SO_REUSEPORT`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return [sock]


class ReusePortListeners(list[socket.socket]):
    """The sockets uvicorn passes each worker: empty in the supervisor, a socket of the worker's own once unpickled
    there (uvicorn starts its workers with `spawn`, which pickles them)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, ...]:
        return bind_reuse_port, (self.host, self.port)


class Supervisor(Multiprocess):
    """uvicorn's supervisor, with SIGHUP forwarded to every worker (a configuration reload, not a restart)."""

    def handle_hup(self) -> None:
        logger.info("Received SIGHUP, asking %d workers to reload their configuration.", len(self.processes))
        for process in self.processes:
            if process.pid is not None:
                try:
                    os.kill(process.pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass  # it died a moment ago; its replacement reads the file as it starts


def run(config: uvicorn.Config) -> None:
    """Serve `config` (an app import string, `workers` > 1) until the supervisor is told to stop."""
    if not hasattr(socket, "SO_REUSEPORT") or config.uds is not None or config.fd is not None:
        Supervisor(config, sockets=[config.bind_socket()]).run()
        return
    # Bound once here without SO_REUSEPORT, and closed: a port anything listens on (another gateway with its own
    # SO_REUSEPORT sockets too) fails now, as it did with uvicorn's shared socket, not in each worker as it restarts.
    config.bind_socket().close()
    Supervisor(config, sockets=ReusePortListeners(config.host, config.port)).run()
