"""uvicorn's `ProxyHeadersMiddleware` without a coroutine of its own around each request.

uvicorn wraps the app in `ProxyHeadersMiddleware` (`proxy_headers`, on by default): it reads `X-Forwarded-Proto` and
`X-Forwarded-For` from a trusted client into the scope, then awaits the app. That await makes it one more coroutine
frame for the request's task to create, and to pass through each time the task resumes. `Forwarded` makes the same
changes to the scope, with the middleware's own trusted hosts, and returns the app's coroutine for the server to
await directly.
"""

from __future__ import annotations

from collections.abc import Awaitable

from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

_PROTOCOLS = frozenset({"http", "https", "ws", "wss"})
FOR = b"x-forwarded-for"


class Forwarded:
    """`ProxyHeadersMiddleware`'s scope changes, made before the app is called rather than around it."""

    __slots__ = ("app", "trusted_hosts")

    def __init__(self, middleware: ProxyHeadersMiddleware) -> None:
        self.app = middleware.app
        self.trusted_hosts = middleware.trusted_hosts

    def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> Awaitable[None]:
        if scope["type"] == "lifespan":
            return self.app(scope, receive, send)
        client_addr = scope.get("client")
        client_host = client_addr[0] if client_addr else None
        if client_host in self.trusted_hosts:
            # The headers by name, last value kept, made in C: the last `X-Forwarded-Proto` is the one that counts,
            # and every `X-Forwarded-For` (most requests have none) is gathered in order only when there is one.
            named = dict(scope["headers"])
            proto = named.get(b"x-forwarded-proto")
            forwarded_for = [] if FOR not in named else [v for n, v in scope["headers"] if n == FOR]
            if proto is not None:
                scheme = proto.decode("latin1").strip()
                if scheme in _PROTOCOLS:
                    scope["scheme"] = scheme.replace("http", "ws") if scope["type"] == "websocket" else scheme
            if forwarded_for:
                host, port = self.trusted_hosts.get_trusted_client_address(b", ".join(forwarded_for).decode("latin1"))
                if host:  # an empty X-Forwarded-For gives no host: the client stays as it is
                    scope["client"] = (host, port)
        return self.app(scope, receive, send)


def unwrapped(app: ASGI3Application) -> ASGI3Application:
    """`app` with uvicorn's own `ProxyHeadersMiddleware` around it replaced by `Forwarded`; any other app as it is."""
    if type(app) is ProxyHeadersMiddleware:
        return Forwarded(app)
    return app
