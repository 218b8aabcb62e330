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
from opentelemetry.trace import Status, StatusCode


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
        self.span = span = self.tracer.start_span(*self.arguments)
        self.token = otel_context.attach(trace.set_span_in_context(span))
        return span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        span = self.span
        try:
            otel_context.detach(self.token)
            # As `use_span`: an Exception (not a BaseException such as GeneratorExit) is recorded and sets the status.
            if isinstance(exc, Exception) and span.is_recording():
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
