"""A started span made current for a block: what `start_as_current_span` does, as one object.

Imports only the OpenTelemetry API: the request paths use it whether or not tracing is on (the SDK is imported only
when a provider is set up)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context, trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import ProxyTracer, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY

_set_item = dict.__setitem__
"""Sets a key of a new `Context` (whose own `__setitem__` refuses, to keep contexts immutable once shared)."""
DIRECT = isinstance(getattr(otel_context, "_RUNTIME_CONTEXT", None), ContextVarsRuntimeContext) and hasattr(
    otel_context._RUNTIME_CONTEXT, "_current_context"
)
"""Whether this API keeps the current context where `CurrentSpan` reads and sets it directly (in the variable of the
default runtime context); with another version, or another runtime context, it goes through the API."""
CURRENT_CONTEXT = (
    otel_context._RUNTIME_CONTEXT._current_context
    if DIRECT and type(otel_context._RUNTIME_CONTEXT) is ContextVarsRuntimeContext
    else None
)
"""That variable, read where `DIRECT` is (the API picks its runtime context once, when it is imported)."""


class CurrentSpan(AbstractContextManager[trace.Span]):
    """What the SDK's `start_as_current_span` does (its span started on entering the block, current inside it as
    `trace.use_span` makes it, and ended after it), in one object instead of two generator context managers. Like
    the SDK's, it also decorates a function, sync or async: each call then runs in a span of its own.

    `tracer` is any tracer (the request paths' helpers use it with whichever provider is installed); `arguments`
    are those of its `start_span`, all eight in order."""

    __slots__ = ("arguments", "end_on_exit", "span", "token", "tracer")

    def __init__(self, tracer: trace.Tracer, arguments: tuple[Any, ...], end_on_exit: bool = True) -> None:
        self.tracer, self.arguments, self.end_on_exit = tracer, arguments, end_on_exit

    def __enter__(self) -> trace.Span:
        tracer = self.tracer
        if type(tracer) is ProxyTracer:
            # A library's tracer got before the provider was installed (the MCP SDK's): once it has found the
            # provider's tracer it only hands each call on to it, through two Python calls of its own.
            tracer = getattr(tracer, "_real_tracer", None) or tracer
        self.span = span = tracer.start_span(*self.arguments)
        self.token = attach_span(span)
        return span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        span = self.span
        try:
            variable = CURRENT_CONTEXT if DIRECT else None
            if variable is not None:
                try:  # what `otel_context.detach` does with the default runtime context
                    variable.reset(self.token)
                except Exception:  # the API's detach fails alike, and logs it
                    otel_context.detach(self.token)
            else:
                otel_context.detach(self.token)
            # As `use_span`: an Exception (not a BaseException such as GeneratorExit) is recorded and sets the status.
            if exc is not None and isinstance(exc, Exception) and span.is_recording():
                if self.arguments[6]:
                    span.record_exception(exc)
                if self.arguments[7]:
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            if self.end_on_exit:
                span.end()

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def in_span_async(*args: Any, **kwargs: Any) -> Any:
                with CurrentSpan(self.tracer, self.arguments, self.end_on_exit):
                    return await function(*args, **kwargs)

            return in_span_async

        @functools.wraps(function)
        def in_span(*args: Any, **kwargs: Any) -> Any:
            with CurrentSpan(self.tracer, self.arguments, self.end_on_exit):
                return function(*args, **kwargs)

        return in_span


def attach_span(span: trace.Span) -> Any:
    """`attach(set_span_in_context(span))`: `span` made current; returns the token to detach it with. With the
    default runtime context, without the API's four Python calls and second copy of the context."""
    variable = CURRENT_CONTEXT if DIRECT else None
    if variable is not None:
        context = Context(variable.get())
        _set_item(context, _SPAN_KEY, span)
        return variable.set(context)
    return otel_context.attach(trace.set_span_in_context(span))
