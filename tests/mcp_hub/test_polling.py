"""`passed_on`: an upstream's stream closed during a call closes the stream of the client request it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest
from mcp.server import ServerRequestContext

from mcp_hub.polling import _CLOSE_CLIENT_STREAM, passed_on, upstream_stream_closed

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class _Request:
    """What `passed_on` reads of a request context."""

    close_sse_stream: Any = None


def _ctx(close: Any = None) -> ServerRequestContext[Any, Any]:
    return cast("ServerRequestContext[Any, Any]", _Request(close))


async def test_a_closed_upstream_stream_closes_the_requests_stream_inside_only() -> None:
    closed: list[str] = []

    async def close() -> None:
        closed.append("closed")

    with passed_on(_ctx(close)):
        await upstream_stream_closed()
    await upstream_stream_closed()
    assert closed == ["closed"]
    assert _CLOSE_CLIENT_STREAM.get() is None


async def test_a_request_without_a_stream_to_close_closes_none_even_inside_one_that_has() -> None:
    closed: list[str] = []

    async def close() -> None:
        closed.append("outer")

    with passed_on(_ctx(close)):
        with passed_on(_ctx()):
            await upstream_stream_closed()
        assert closed == []
        await upstream_stream_closed()
    assert closed == ["outer"]
    assert _CLOSE_CLIENT_STREAM.get() is None


async def test_nothing_to_pass_on_leaves_the_variable_as_it_was_even_on_an_error() -> None:
    with pytest.raises(KeyError), passed_on(_ctx()):
        assert _CLOSE_CLIENT_STREAM.get() is None
        raise KeyError("the call failed")
    assert _CLOSE_CLIENT_STREAM.get() is None
    await upstream_stream_closed()  # nothing to close: no error


async def test_the_stream_is_let_go_after_an_error_too() -> None:
    async def close() -> None:
        raise AssertionError("not called")

    with pytest.raises(KeyError), passed_on(_ctx(close)):
        assert _CLOSE_CLIENT_STREAM.get() is close
        raise KeyError("the call failed")
    assert _CLOSE_CLIENT_STREAM.get() is None
