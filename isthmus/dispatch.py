"""`Gateway`: the Starlette app with a direct dispatch for its hot routes in front of the middleware stack.

Starlette sends every request through `ServerErrorMiddleware`, `ExceptionMiddleware`, the router's linear scan of
route patterns and `request_response`, each wrapping `send` once more: several microseconds a request. The hot
routes (chat completions, messages, the MCP endpoint) are matched here with one dict lookup (a prefix check and
the route's own pattern for `/mcp/{server}`), their endpoint is called directly, and an exception is rendered as
those layers would render it: the `ExceptionMiddleware` handlers (by the exception's MRO, once more for function
endpoints, as `request_response` wraps them again), else the app's 500 handler, whose response is sent if nothing
was and the exception re-raised for the server to log. The scope carries what those layers leave in it (`app`,
`router`, `starlette.exception_handlers`, `route`, `endpoint`, `path_params`). Everything else, and everything
while the app has middleware of its own or `debug` on, goes through Starlette unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import is_async_callable
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ExceptionHandler, Message, Receive, Scope, Send

from isthmus.lifecycle.generation import Generation


class _Sender:
    """`send`, noting whether the response has started (as each Starlette layer's own wrapper does)."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    def __call__(self, message: Message) -> Awaitable[None]:
        # The server's own `send` awaitable, returned rather than awaited: no coroutine of this wrapper's per message.
        if message["type"] == "http.response.start":
            self.started = True
        return self.send(message)


class _Direct:
    """One hot route: its methods (None: all), its endpoint, and whether that is a request function."""

    __slots__ = ("route", "methods", "endpoint", "function", "prefix")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.methods = route.methods
        self.endpoint: Any = route.endpoint
        self.function = route.app is not route.endpoint  # `request_response` wrapped it
        self.prefix = route.path.split("{", 1)[0]


class _Table:
    """The hot routes as the router would find them, and the exception handling the middleware stack applies."""

    def __init__(self, app: Starlette, paths: frozenset[str]) -> None:
        stack = app.middleware_stack
        assert isinstance(stack, ServerErrorMiddleware) and isinstance(stack.app, ExceptionMiddleware)
        exceptions = stack.app
        self.errors = stack
        self.handlers: tuple[dict[Any, ExceptionHandler], dict[int, ExceptionHandler]] = (
            exceptions._exception_handlers,
            exceptions._status_handlers,
        )
        self.static: dict[str, _Direct] = {}
        self.patterns: list[_Direct] = []
        earlier: list[Any] = []
        for route in app.router.routes:
            if isinstance(route, Route) and route.path in paths and _first(route, earlier):
                direct = _Direct(route)
                if direct.function and not is_async_callable(direct.endpoint):
                    pass  # a sync endpoint runs in the thread pool: leave it to Starlette
                elif route.param_convertors:
                    self.patterns.append(direct)
                else:
                    self.static[route.path] = direct
            earlier.append(route)

    def find(self, path: str) -> tuple[_Direct, dict[str, Any]] | None:
        direct = self.static.get(path)
        if direct is not None:
            return direct, {}
        for direct in self.patterns:
            if path.startswith(direct.prefix):
                match = direct.route.path_regex.match(path)
                if match:
                    convertors = direct.route.param_convertors
                    return direct, {key: convertors[key].convert(value) for key, value in match.groupdict().items()}
        return None


def _first(route: Route, earlier: list[Any]) -> bool:
    """Whether the router would always reach `route` before any earlier route could take its requests."""
    for other in earlier:
        if not isinstance(other, Route):
            return False  # a mount: its patterns are not known here
        if route.param_convertors:
            if other.param_convertors or route.path_regex.match(other.path):
                return False
        elif other.path_regex.match(route.path):
            return False
    return True


class Gateway(Starlette):
    """Starlette, with `direct_paths` (route paths) served by the direct dispatch described above.

    `direct=False` serves every request through Starlette: the reference the direct dispatch is tested against.
    """

    def __init__(self, *args: Any, direct_paths: frozenset[str] = frozenset(), direct: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.direct_paths = direct_paths if direct else frozenset()
        self._table: _Table | None = None
        self.generation: Generation | None = None

    def install(self, generation: Generation) -> None:
        """Serve `generation`'s routes and state from the next request on (one synchronous step: no request sees
        half of it). A request already running keeps the endpoint it found, so it finishes on its generation."""
        self.router.routes = list(generation.routes)
        self._table = None
        self.state.governance = generation.governance
        self.state.components = generation.components
        self.generation = generation

    def _direct_table(self) -> _Table | None:
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        stack = self.middleware_stack
        plain = (
            isinstance(stack, ServerErrorMiddleware)
            and not stack.debug
            and isinstance(stack.app, ExceptionMiddleware)
            and stack.app.app is self.router
        )
        if not (plain and self.direct_paths):
            self.direct_paths = frozenset()
            return None
        self._table = _Table(self, self.direct_paths)
        return self._table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The route is found here rather than in a coroutine of its own: each time a request's task resumes (each
        # upstream read, each chunk of a stream) it passes through every coroutine frame between it and the socket.
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        table: _Table | None = None
        found: tuple[_Direct, dict[str, Any]] | None = None
        if self.direct_paths and not scope.get("root_path"):
            table = self._table or self._direct_table()
            found = table.find(scope["path"]) if table is not None else None
            if found is not None and found[0].methods is not None and scope["method"] not in found[0].methods:
                found = None
        generation = self.generation
        if generation is not None:
            generation.active += 1  # the generation that routes this request stops only after it ended
        try:
            if found is None:
                await super().__call__(scope, receive, send)
                return
            # The direct route is served here too, not in a coroutine of its own (one frame less, as above).
            assert table is not None
            direct = found[0]
            sender = self._enter(table, direct, found[1], scope, send)
            request: Request | None = None
            try:
                if direct.function:
                    request = Request(scope, receive, send)
                    response = await direct.endpoint(request)
                    await response(scope, receive, sender)
                else:
                    await direct.endpoint(scope, receive, sender)
            except Exception as exc:
                # `request_response` handles a function endpoint's exception, then `ExceptionMiddleware` whatever
                # escapes that; an ASGI endpoint has only the middleware around it.
                passes = 2 if direct.function else 1
                await self._failed(table, exc, request or Request(scope, receive, send), passes, scope, receive, sender)
        finally:
            if generation is not None:
                generation.leave()

    def _enter(self, table: _Table, direct: _Direct, params: dict[str, Any], scope: Scope, send: Send) -> _Sender:
        """What the middleware stack and the router leave in the scope for `direct`, and the `send` it is given."""
        scope["app"] = self
        if "router" not in scope:
            scope["router"] = self.router
        scope["starlette.exception_handlers"] = table.handlers
        path_params = dict(scope.get("path_params", {}))
        path_params.update(params)
        scope["route"] = direct.route
        scope["endpoint"] = direct.endpoint
        scope["path_params"] = path_params
        return _Sender(send)

    async def _failed(
        self,
        table: _Table,
        exc: Exception,
        request: Request,
        passes: int,
        scope: Scope,
        receive: Receive,
        sender: _Sender,
    ) -> None:
        for _ in range(passes):
            try:
                await _handle(table, exc, request, scope, receive, sender)
                return
            except Exception as again:
                exc = again
        # ServerErrorMiddleware: the 500 handler's response if nothing was sent yet, and the error goes on.
        handler: Any = table.errors.handler
        error_request = Request(scope)
        response: Any
        if handler is None:
            response = table.errors.error_response(error_request, exc)
        elif is_async_callable(handler):
            response = await handler(error_request, exc)
        else:
            response = await run_in_threadpool(handler, error_request, exc)
        if not sender.started:
            await response(scope, receive, sender.send)
        raise exc


async def _handle(
    table: _Table, exc: Exception, request: Request, scope: Scope, receive: Receive, send: _Sender
) -> None:
    """`wrap_app_handling_exceptions`'s except clause: render `exc` with its handler, or raise."""
    exception_handlers, status_handlers = table.handlers
    handler: Any = None
    if isinstance(exc, HTTPException):
        handler = status_handlers.get(exc.status_code)
    if handler is None:
        handler = _lookup_exception_handler(exception_handlers, exc)
    if handler is None:
        raise exc
    if send.started:
        raise RuntimeError("Caught handled exception, but response already started.") from exc
    response: Any
    if is_async_callable(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    if response is not None:
        await response(scope, receive, send)
    exc.__traceback__ = None
