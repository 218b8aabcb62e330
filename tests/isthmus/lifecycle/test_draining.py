"""`DrainingServer`: a connection that reaches the server as it shuts down gets its request answered, not reset.

The server runs in this test's event loop, so while the test does blocking socket calls the loop accepts nothing:
connections the kernel completes meanwhile stay queued on the listening socket, exactly the ones uvicorn's own
shutdown resets.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from isthmus.http_guard import guarded_protocol
from isthmus.lifecycle.draining import DrainingServer
from tests.isthmus.test_slow_clients import read_until_closed
from toolpolicy.server_settings import ServerSettings

pytestmark = pytest.mark.anyio

REQUEST = b"POST /echo HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n\r\nhi"
PATIENCE = 30.0
"""Seconds a client socket waits for the server: far beyond anything the server does here."""


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(await request.body())


def _server(cls: type[uvicorn.Server] = DrainingServer) -> uvicorn.Server:
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    limits = ServerSettings()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", http=guarded_protocol(limits)
    )
    config.load()
    server = cls(config)
    server.lifespan = config.lifespan_class(config)  # as `uvicorn.Server.serve` sets it up before `startup`
    return server


def _port(server: uvicorn.Server) -> int:
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return port


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sent until it closed the connection (b"" when it was reset)."""
    try:
        return read_until_closed(sock)
    except ConnectionResetError:
        return b""
    finally:
        sock.close()


async def test_connections_queued_on_the_listening_socket_at_shutdown_are_answered() -> None:
    server = _server()
    await server.startup()
    clients = [socket.create_connection(("127.0.0.1", _port(server)), timeout=PATIENCE) for _ in range(5)]
    for client in clients:  # the loop has not run since: every one is still queued, its request sent
        client.sendall(REQUEST)
    await server.shutdown()
    answers = await asyncio.gather(*(asyncio.to_thread(_answer, client) for client in clients))
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hi")


async def test_plain_uvicorn_resets_them_which_is_what_draining_is_for() -> None:
    server = _server(uvicorn.Server)
    await server.startup()
    client = socket.create_connection(("127.0.0.1", _port(server)), timeout=PATIENCE)
    client.sendall(REQUEST)
    await server.shutdown()
    assert await asyncio.to_thread(_answer, client) == b""


async def test_a_connection_accepted_before_shutdown_gets_a_grace_for_its_first_request() -> None:
    server = _server()
    await server.startup()
    client = socket.create_connection(("127.0.0.1", _port(server)), timeout=PATIENCE)
    while not server.server_state.connections:  # the loop accepts it; no request has come yet
        await asyncio.sleep(0.01)
    shutting_down = asyncio.create_task(server.shutdown())
    await asyncio.sleep(0)  # uvicorn has asked every connection to shut down
    client.sendall(REQUEST)
    await shutting_down
    answer = await asyncio.to_thread(_answer, client)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hi")
