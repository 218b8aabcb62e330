"""`InlineBodyRequest`: a small body goes out with its head without a task of its own, byte for byte as aiohttp's
own `send` writes it; anything else, and a connection closing under the request, is aiohttp's."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Coroutine, Generator
from typing import Any

import aiohttp
import anyio
import pytest
from yarl import URL

from llm_proxy.inline_body import INLINE_LIMIT, InlineBodyRequest
from tests.llm_proxy.test_upstream_wire import _Recorder

pytestmark = pytest.mark.anyio

SMALL = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
NEAR_THE_LIMIT = b'{"model":"m","pad":"' + b"x" * (INLINE_LIMIT - 40) + b'"}'
LARGE = b'{"model":"m","pad":"' + b"x" * INLINE_LIMIT + b'"}'


def test_aiohttps_send_and_body_writer_are_the_ones_it_mirrors() -> None:
    # `InlineBodyRequest.send` repeats what these two do for a small bytes body. A new aiohttp that changes either
    # fails here: read the new `send`/`write_bytes`, bring `inline_body.py` in line, then update the fingerprints.
    fingerprints = {
        name: hashlib.sha256(inspect.getsource(getattr(aiohttp.ClientRequest, name)).encode()).hexdigest()[:16]
        for name in ("send", "write_bytes")
    }
    assert fingerprints == {"send": "82b495aa06760c64", "write_bytes": "f3b5cbcb26f2c27d"}


class _CountTasks:
    """The loop's task factory while installed: counts the tasks made."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        self.made += 1
        return asyncio.Task(coro, loop=loop)


async def _post_with(
    request_class: type[aiohttp.ClientRequest], url: str, body: bytes, headers: dict[str, str]
) -> tuple[bytes, int]:
    """What a session with `request_class` sends for one POST on a kept-alive connection, and the tasks it makes."""
    seen: list[bytes] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Recorder(seen), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = url.format(port=port)
    counter = _CountTasks()
    try:
        async with aiohttp.ClientSession(request_class=request_class) as session:
            with anyio.fail_after(10):
                async with session.post(target, data=body, headers=headers) as warm:  # the connection made
                    await warm.read()
                loop.set_task_factory(counter)
                try:
                    async with session.post(target, data=body, headers=headers) as response:
                        await response.read()
                finally:
                    loop.set_task_factory(None)
    finally:
        server.close()
    return seen[-1].replace(b":%d\r\n" % port, b":PORT\r\n", 1), counter.made  # the ports differ


@pytest.mark.parametrize(
    "body", [SMALL, b"", NEAR_THE_LIMIT, LARGE], ids=["small", "empty", "near-the-limit", "larger-than-the-limit"]
)
@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("http://127.0.0.1:{port}/v1/chat/completions", {"content-type": "application/json"}),
        ("http://127.0.0.1:{port}/v1/chat/completions?api-version=1", {"content-type": "application/json", "x": "y"}),
        ("http://127.0.0.1:{port}/v1/chat/completions", {}),  # the bytes' own content type
        ("http://127.0.0.1:{port}/v1/chat/completions", {"content-type": "a/b", "connection": "close"}),
        # a head that with the body passes the writer's drain mark: drained before the read timeout, as aiohttp does
        ("http://127.0.0.1:{port}/v1/chat/completions", {"content-type": "a/b", "x-big": "h" * 40_000}),
    ],
)
async def test_the_request_goes_out_byte_for_byte_as_aiohttps_own_send_writes_it(
    url: str, headers: dict[str, str], body: bytes
) -> None:
    ours, ours_tasks = await _post_with(InlineBodyRequest, url, body, headers)
    theirs, theirs_tasks = await _post_with(aiohttp.ClientRequest, url, body, headers)
    assert ours == theirs and ours.endswith(body)
    assert (theirs_tasks, ours_tasks) == ((1, 0) if len(body) <= INLINE_LIMIT else (1, 1))


def _requests() -> Generator[type[aiohttp.ClientRequest], None, None]:
    yield aiohttp.ClientRequest
    yield InlineBodyRequest


async def test_a_connection_closing_under_the_request_fails_it_as_aiohttps_send_does() -> None:
    seen: list[bytes] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Recorder(seen), "127.0.0.1", 0)
    url = URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions")
    failures: list[tuple[type[BaseException], str]] = []
    try:
        async with aiohttp.ClientSession() as session:
            for request_class in _requests():
                request = request_class(
                    "POST", url, data=SMALL, headers={"content-type": "application/json"}, loop=loop, session=session
                )
                connector = session.connector
                assert connector is not None
                conn = await connector.connect(request, traces=[], timeout=aiohttp.ClientTimeout())
                assert conn.protocol is not None and conn.protocol.transport is not None
                conn.protocol.set_response_params()
                conn.protocol.transport.close()  # closing: a write would raise
                response = await request.send(conn)
                with anyio.fail_after(10), pytest.raises(aiohttp.ClientError) as failed:
                    await response.start(conn)
                failures.append((type(failed.value), str(failed.value)))
                conn.close()
    finally:
        server.close()
    assert failures[0] == failures[1] and failures[0][0] is aiohttp.ServerDisconnectedError
    assert seen == []
