"""Per-key upstream sessions: opened once per key, the least recently used closed at the cap, a failed one dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import pytest
from mcp import Client

from mcp_hub.upstreams.key_sessions import KeySessions

pytestmark = pytest.mark.anyio


class Opened:
    def __init__(self) -> None:
        self.open: list[int] = []
        self.count = 0
        self.fail = False

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Client]:
        if self.fail:
            raise ConnectionError("refused")
        self.count += 1
        number = self.count
        self.open.append(number)
        try:
            yield cast(Client, cast(Any, number))
        finally:
            self.open.remove(number)


async def settle() -> None:
    for _ in range(10):
        await anyio.sleep(0)


async def test_each_key_gets_its_own_session_and_the_oldest_is_closed_at_the_cap() -> None:
    opened = Opened()
    sessions = KeySessions("s", opened.client, limit=2)
    async with anyio.create_task_group() as tg:
        await tg.start(sessions.run)
        a = await sessions.client("a")
        assert await sessions.client("a") is a  # the same session again
        await sessions.client("b")
        await sessions.client("a")  # a is now the most recently used
        await sessions.client("c")  # at the cap: b goes
        await settle()
        assert len(sessions) == 2 and sorted(opened.open) == [1, 3]
        sessions.drop("a")
        await settle()
        assert opened.open == [3]
        assert await sessions.client("a") == 4  # a new one
        tg.cancel_scope.cancel()
    assert opened.open == []  # every session closed with the connection


async def test_a_session_that_cannot_open_is_an_error_and_is_tried_again_next_time() -> None:
    opened = Opened()
    opened.fail = True
    sessions = KeySessions("s", opened.client)
    async with anyio.create_task_group() as tg:
        await tg.start(sessions.run)
        with pytest.raises(ConnectionError):
            await sessions.client("a")
        opened.fail = False
        assert await sessions.client("a") == 1
        tg.cancel_scope.cancel()
