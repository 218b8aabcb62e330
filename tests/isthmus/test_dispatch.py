"""The direct dispatch answers exactly as Starlette's middleware and router do: the same ASGI messages, the same
exception raised to the server, the same scope, for every way an endpoint can end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from isthmus.app import DIRECT_PATHS, http_error
from isthmus.dispatch import Gateway
from isthmus.errors import handle_gateway_error, handle_unexpected
from toolpolicy.errors import GatewayError, LimitExceeded

pytestmark = pytest.mark.anyio

SCOPE_KEYS = ("path_params", "endpoint", "route", "app", "router", "starlette.exception_handlers")


def fail(how: str) -> None:
    if how == "gateway":
        raise LimitExceeded("too many", retry_after=3)
    if how == "http":
        raise HTTPException(418, "teapot")
    if how == "bug":
        raise ValueError("a bug")


async def chat(request: Request) -> Response:
    how = request.headers.get("x-fail", "")
    fail(how)
    if how == "stream":

        async def chunks() -> AsyncIterator[bytes]:
            yield b"one"
            raise LimitExceeded("mid-stream")

        return StreamingResponse(chunks())
    body = await request.body()
    return JSONResponse({"path_params": request.path_params, "body": body.decode()}, headers={"x-chat": "1"})


class Mcp:
    """An ASGI endpoint, as the MCP hub's is."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        how = dict(scope["headers"]).get(b"x-fail", b"").decode()
        fail(how)
        await send({"type": "http.response.start", "status": 202, "headers": [(b"x-mcp", b"1")]})
        if how == "started":
            raise LimitExceeded("after the start")
        if how == "started-bug":
            raise ValueError("after the start")
        await send({"type": "http.response.body", "body": repr(scope["path_params"]).encode()})


def build(direct: bool, *, shadow: bool = False) -> Gateway:
    mcp = Mcp()
    routes = [Route("/mcp/shadowed", chat, methods=["POST"])] if shadow else []
    routes += [
        Route("/health", chat, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/messages", chat, methods=["POST"]),
        Route("/mcp", mcp),
        Route("/mcp/{server}", mcp),
    ]
    return Gateway(
        routes=routes,
        exception_handlers={
            GatewayError: handle_gateway_error,
            HTTPException: http_error,
            Exception: handle_unexpected,
        },
        direct_paths=DIRECT_PATHS,
        direct=direct,
    )


async def call(app: Gateway, method: str, path: str, headers: dict[str, str], root_path: str = "") -> dict[str, Any]:
    """What the server sees: the messages sent, the exception raised, and the scope the endpoint got."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("gateway", 80),
    }
    sent: list[Message] = []
    bodies = [{"type": "http.request", "body": b'{"a": 1}', "more_body": False}]

    async def receive() -> Message:
        return bodies.pop(0) if bodies else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    raised: str | None = None
    try:
        await app(scope, receive, send)
    except Exception as exc:
        raised = f"{type(exc).__name__}: {exc} (from {type(exc.__cause__).__name__})"
    seen = {key: scope.get(key) for key in SCOPE_KEYS}
    # Two apps are compared, so each object is named by what it is rather than by its identity.
    seen["app"] = seen["app"] is app
    seen["router"] = seen["router"] is app.router
    seen["endpoint"] = getattr(seen["endpoint"], "__qualname__", type(seen["endpoint"]).__qualname__)
    seen["route"] = getattr(seen["route"], "path", None)
    handlers = seen["starlette.exception_handlers"]
    if handlers is not None:
        seen["starlette.exception_handlers"] = [{k: v.__qualname__ for k, v in table.items()} for table in handlers]
    return {"sent": sent, "raised": raised, "scope": seen}


CASES = [
    ("POST", "/v1/chat/completions", ""),
    ("POST", "/v1/messages", ""),
    ("POST", "/v1/chat/completions", "gateway"),
    ("POST", "/v1/chat/completions", "http"),
    ("POST", "/v1/chat/completions", "bug"),
    ("POST", "/v1/chat/completions", "stream"),
    ("GET", "/v1/chat/completions", ""),
    ("POST", "/v1/chat/completions/", ""),
    ("POST", "/mcp", ""),
    ("GET", "/mcp", ""),
    ("DELETE", "/mcp/docs", ""),
    ("POST", "/mcp/docs", "gateway"),
    ("POST", "/mcp/docs", "http"),
    ("POST", "/mcp/docs", "bug"),
    ("POST", "/mcp/docs", "started"),
    ("POST", "/mcp/docs", "started-bug"),
    ("POST", "/mcp/docs/extra", ""),
    ("POST", "/mcp/shadowed", ""),
    ("GET", "/health", ""),
]


@pytest.mark.parametrize(("method", "path", "how"), CASES)
@pytest.mark.parametrize("shadow", [False, True])
async def test_direct_dispatch_answers_as_starlette_does(method: str, path: str, how: str, shadow: bool) -> None:
    headers = {"x-fail": how, "content-type": "application/json"}
    through_starlette = await call(build(False, shadow=shadow), method, path, headers)
    direct = await call(build(True, shadow=shadow), method, path, headers)
    assert direct == through_starlette


async def test_a_root_path_goes_through_starlette() -> None:
    headers = {"x-fail": ""}
    through_starlette = await call(build(False), "POST", "/api/mcp/docs", headers, root_path="/api")
    assert await call(build(True), "POST", "/api/mcp/docs", headers, root_path="/api") == through_starlette


async def test_the_hot_routes_skip_the_middleware_stack() -> None:
    app = build(True)
    await call(app, "GET", "/health", {})  # builds the stack
    assert app.middleware_stack is not None
    stack, through = app.middleware_stack, []

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        through.append(scope["path"])
        await stack(scope, receive, send)

    app.middleware_stack = counting
    for method, path in [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/messages"),
        ("POST", "/mcp"),
        ("GET", "/mcp/x"),
    ]:
        assert (await call(app, method, path, {}))["raised"] is None
    await call(app, "GET", "/v1/chat/completions", {})
    await call(app, "GET", "/health", {})
    assert through == ["/v1/chat/completions", "/health"]


async def test_a_shadowed_pattern_and_app_middleware_leave_everything_to_starlette() -> None:
    shadowed = build(True, shadow=True)
    await call(shadowed, "POST", "/mcp/docs", {})
    assert shadowed._table is not None and [d.route.path for d in shadowed._table.patterns] == []
    assert sorted(shadowed._table.static) == ["/mcp", "/v1/chat/completions", "/v1/messages"]

    class Tag:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def tagged(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message["headers"], (b"x-tag", b"1")]}
                await send(message)

            await self.app(scope, receive, tagged)

    app = build(True)
    app.add_middleware(Tag)
    answer = await call(app, "POST", "/v1/chat/completions", {})
    assert (b"x-tag", b"1") in answer["sent"][0]["headers"]
