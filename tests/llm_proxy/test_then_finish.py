"""A non-streamed answer is sent before its audit record is made, and the record is made however sending went."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.responses import Response

from llm_proxy.finishing import ThenFinish
from llm_proxy.streaming import BODY_FOLLOWS

pytestmark = pytest.mark.anyio


async def receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def test_the_response_goes_out_unchanged_before_the_finish() -> None:
    events: list[Any] = []
    inner = Response(b'{"ok":true}', status_code=201, headers={"x-request-id": "r1"}, media_type="application/json")
    response = ThenFinish(inner, lambda: events.append("finished"))
    assert response.status_code == 201 and response.headers["x-request-id"] == "r1"

    async def send(message: dict[str, Any]) -> None:
        events.append(message)

    await response({"type": "http"}, receive, send)
    assert [event if isinstance(event, str) else event["type"] for event in events] == [
        "http.response.start",
        "http.response.body",
        "finished",
    ]
    assert events[0]["status"] == 201 and (b"x-request-id", b"r1") in events[0]["headers"]
    assert events[0][BODY_FOLLOWS] is True  # the server may write the head with the body
    assert events[1]["body"] == b'{"ok":true}'


async def test_the_finish_runs_when_sending_fails() -> None:
    finished: list[bool] = []

    async def send(message: dict[str, Any]) -> None:
        raise OSError("the client went away")

    with pytest.raises(OSError):
        await ThenFinish(Response(b"{}"), lambda: finished.append(True))({"type": "http"}, receive, send)
    assert finished == [True]
