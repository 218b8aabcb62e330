"""`Forwarded` leaves each scope as uvicorn's `ProxyHeadersMiddleware` leaves it, and the app it calls is what the
server awaits: no coroutine of its own in between."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from isthmus.forwarded import Forwarded, unwrapped
from isthmus.http_guard import ConnectionBook, RequestLimit
from toolpolicy.server_settings import ServerSettings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def scope(kind: str = "http", client: Any = ("127.0.0.1", 5000), *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": kind, "client": client, "scheme": "http", "headers": list(headers)}


PROTO = b"x-forwarded-proto"
FOR = b"x-forwarded-for"
SCOPES = {
    "no forwarding headers": scope(),
    "https from a trusted proxy": scope("http", ("127.0.0.1", 1), (PROTO, b" https ")),
    "an unknown protocol": scope("http", ("127.0.0.1", 1), (PROTO, b"gopher")),
    "the last of two protocols": scope("http", ("127.0.0.1", 1), (PROTO, b"https"), (PROTO, b"http")),
    "a websocket's": scope("websocket", ("127.0.0.1", 1), (PROTO, b"https")),
    "clients through proxies": scope("http", ("127.0.0.1", 1), (FOR, b"1.2.3.4, 10.0.0.1"), (FOR, b"127.0.0.1")),
    "a client with a port": scope("http", ("127.0.0.1", 1), (FOR, b"[::1]:8080")),
    "an empty forwarded-for": scope("http", ("127.0.0.1", 1), (FOR, b"")),
    "an untrusted peer": scope("http", ("10.9.9.9", 1), (PROTO, b"https"), (FOR, b"1.2.3.4")),
    "no client": scope("http", None, (PROTO, b"https"), (FOR, b"1.2.3.4")),
    "the lifespan": {"type": "lifespan"},
}


@pytest.mark.parametrize("trusted", ["127.0.0.1", "*", "10.0.0.0/8, 127.0.0.1"])
@pytest.mark.parametrize("case", list(SCOPES))
async def test_each_scope_is_left_as_uvicorns_middleware_leaves_it(case: str, trusted: str) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(copy.deepcopy(scope))

    middleware = ProxyHeadersMiddleware(app, trusted_hosts=trusted)
    await middleware(copy.deepcopy(SCOPES[case]), None, None)  # type: ignore[arg-type]
    await Forwarded(middleware)(copy.deepcopy(SCOPES[case]), None, None)  # type: ignore[arg-type]
    assert seen[0] == seen[1]


async def test_the_app_is_called_and_its_coroutine_returned_as_it_is() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    called = Forwarded(ProxyHeadersMiddleware(app))(scope(), None, None)  # type: ignore[arg-type]
    assert getattr(called, "cr_code", None) is app.__code__
    await called


def test_connections_serve_the_app_unwrapped_and_behind_the_request_cap() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    wrapped = ProxyHeadersMiddleware(app)
    assert unwrapped(app) is app
    plain = ConnectionBook(ServerSettings()).app(wrapped)
    assert isinstance(plain, Forwarded) and plain.app is app
    capped = ConnectionBook(ServerSettings(max_requests=5)).app(wrapped)
    assert isinstance(capped, RequestLimit) and isinstance(capped.app, Forwarded)
