"""A hit serves only what the calling key could have been answered by. An entry is keyed by the requested model or
alias, but may have been answered by a fallback of the request that stored it, which another key sharing the
scope may not use: such an entry is not served to that key (a miss; its own answer replaces the entry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm_proxy.cache.conftest import SAME_TEAM_KEY, cache_settings
from tests.llm_proxy.cache.test_exact import chat, chat_body
from tests.llm_proxy.conftest import KEY, serve_gateway
from tests.llm_proxy.mock_provider import MockProvider, status

pytestmark = pytest.mark.anyio
WIDE_KEY = "isk-llm-wide-key"
FALLBACK = "claude/claude-haiku-4-5"


def keys() -> list[dict[str, object]]:
    """Three keys of team dev: one may use anything, one only the alias `fast`, one `fast` and the fallback."""
    return [
        {"name": "dev-key", "team": "dev", "value": KEY, "models": ["*"]},
        {"name": "dev-two", "team": "dev", "value": SAME_TEAM_KEY, "models": ["fast"]},
        {"name": "dev-wide", "team": "dev", "value": WIDE_KEY, "models": ["fast", "claude/*"]},
    ]


async def test_an_entry_a_fallback_answered_is_not_served_to_a_key_that_may_not_use_it(
    tmp_path: Path, mock: MockProvider
) -> None:
    settings = cache_settings(tmp_path, mock, {"scope": "team"}, virtual_keys=keys())
    body = {**chat_body(), "model": "fast"}
    async with serve_gateway(settings) as gateway:
        mock.queue(status(500), status(500), status(500))  # the alias's one target fails: the fallback answers
        stored = await chat(gateway, {**body, "fallbacks": [FALLBACK]})
        assert stored.status_code == 200 and stored.headers["x-isthmus-route"] == FALLBACK
        served = await chat(gateway, body, key=WIDE_KEY)  # its allowlist names the fallback
        assert served.headers["x-isthmus-cache"] == "hit" and served.headers["x-isthmus-route"] == FALLBACK
        refused = await chat(gateway, body, key=SAME_TEAM_KEY)
        assert refused.status_code == 200
        assert refused.headers["x-isthmus-cache"] == "miss"
        assert refused.headers["x-isthmus-route"] == "mock/fast-model"
        records = await gateway.wait_records(3)
        assert records[2].details["cache_refused"] == "answered by a model the key may not use"
        # The key's own answer replaced the entry: now every key of the team may be served it.
        again = await chat(gateway, body, key=SAME_TEAM_KEY)
        assert again.headers["x-isthmus-cache"] == "hit" and again.headers["x-isthmus-route"] == "mock/fast-model"
        assert len(mock.seen) == 5


async def test_what_an_alias_target_or_the_callers_own_fallback_answered_is_served(
    tmp_path: Path, mock: MockProvider
) -> None:
    """An alias is the allowlist's unit: a key allowed `fast` may be served what any of its targets answered, and
    what a fallback it names itself (and may use, here the alias `backup`) answered."""
    aliases = {"fast": {"targets": ["mock/fast-model", FALLBACK]}, "backup": {"targets": [FALLBACK]}}
    narrow = {"name": "dev-two", "team": "dev", "value": SAME_TEAM_KEY, "models": ["fast", "backup", "mock/gpt-*"]}
    settings = cache_settings(tmp_path, mock, {"scope": "team"}, models=aliases, virtual_keys=[keys()[0], narrow])
    async with serve_gateway(settings) as gateway:
        mock.queue(status(500), status(500), status(500))
        stored = await chat(gateway, {**chat_body(), "model": "fast"})
        assert stored.headers["x-isthmus-route"] == FALLBACK  # the alias's second target
        hit = await chat(gateway, {**chat_body(), "model": "fast"}, key=SAME_TEAM_KEY)
        assert hit.headers["x-isthmus-cache"] == "hit"

        mock.queue(status(500), status(500), status(500))
        body = {**chat_body("another"), "model": "mock/gpt-test"}
        stored = await chat(gateway, {**body, "fallbacks": ["backup"]})
        assert stored.headers["x-isthmus-route"] == FALLBACK
        own = await chat(gateway, {**body, "fallbacks": ["backup"]}, key=SAME_TEAM_KEY)
        assert own.headers["x-isthmus-cache"] == "hit"
        without = await chat(gateway, body, key=SAME_TEAM_KEY)  # `backup` is not in this request's chain
        assert without.headers["x-isthmus-cache"] == "miss"


async def test_a_forbidden_fallback_is_refused_even_when_an_entry_exists(tmp_path: Path, mock: MockProvider) -> None:
    settings = cache_settings(tmp_path, mock, {"scope": "team"}, virtual_keys=keys())
    body = {**chat_body(), "model": "fast"}
    async with serve_gateway(settings) as gateway:
        await chat(gateway, body)
        refused = await chat(gateway, {**body, "fallbacks": [FALLBACK]}, key=SAME_TEAM_KEY)
        assert refused.status_code == 403
        assert refused.json()["error"]["param"] == "fallbacks[0]"
        assert len(mock.seen) == 1
