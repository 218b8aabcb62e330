"""A non-stream hit sends the stored answer encoded once (`ResponseCache._wire_body`): each hit still gets a fresh
id (and chat its `created`, now), everything else as stored, whatever the text holds."""

from __future__ import annotations

import httpx2
import pytest

from tests.llm_proxy.cache.conftest import Clock
from tests.llm_proxy.cache.test_exact import chat, chat_body
from tests.llm_proxy.conftest import KEY, Gateway
from tests.llm_proxy.mock_provider import MockProvider

pytestmark = pytest.mark.anyio
TEXT = 'déjà vu, "quoted", \\ back, 日本語, emoji 🙂, {"json": [1, 2]}'


async def test_chat_hits_renew_id_and_created_and_keep_the_rest(
    cached: Gateway, mock: MockProvider, clock: Clock
) -> None:
    stored = (await chat(cached, chat_body(TEXT))).json()
    clock.now += 42
    first, second = (await chat(cached, chat_body(TEXT))).json(), (await chat(cached, chat_body(TEXT))).json()
    assert len(mock.seen) == 1
    assert len({stored["id"], first["id"], second["id"]}) == 3
    assert first["id"].startswith("chatcmpl-") and first["created"] == int(clock.now)
    renewed = {"id", "created"}
    assert {k: v for k, v in first.items() if k not in renewed} == {k: v for k, v in stored.items() if k not in renewed}
    assert TEXT in first["choices"][0]["message"]["content"]


async def test_messages_hits_renew_the_id_and_keep_the_rest(cached: Gateway, mock: MockProvider) -> None:
    body = {"model": "claude/claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": TEXT}]}
    async with httpx2.AsyncClient(base_url=cached.url, timeout=10) as http:
        answers = [
            await http.post("/v1/messages", json=body, headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})
            for _ in range(3)
        ]
    assert [answer.headers["x-isthmus-cache"] for answer in answers] == ["miss", "hit", "hit"]
    stored, first, second = (answer.json() for answer in answers)
    assert first["id"].startswith("msg_") and len({stored["id"], first["id"], second["id"]}) == 3
    assert {k: v for k, v in second.items() if k != "id"} == {k: v for k, v in stored.items() if k != "id"}
    assert len(mock.seen) == 1
