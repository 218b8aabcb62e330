"""Retries, key rotation, fallbacks and the circuit breaker, driven by the real `openai` SDK, observed at the mock."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import (
    MockProvider,
    drop,
    garbage,
    hang,
    openai_frames,
    sse,
    status,
    stream_frames,
)

pytestmark = pytest.mark.anyio
HELLO = [{"role": "user", "content": "hello"}]


def provider(mock: MockProvider, *keys: Any) -> dict[str, Any]:
    listed = [key if isinstance(key, dict) else {"value": key} for key in keys] or [{"value": "sk-mock"}]
    return {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": listed}


@pytest.fixture
async def pair(tmp_path: Path, mock: MockProvider) -> AsyncIterator[Gateway]:
    """Providers `a` (key sk-a) and `b` (key sk-b) on the same mock, and an alias `chain` over a then b."""
    providers = {"a": provider(mock, "sk-a"), "b": provider(mock, "sk-b")}
    models = {"chain": {"targets": ["a/model-a", "b/model-b"]}}
    async with serve_gateway(settings_for(tmp_path, providers, models=models)) as started:
        yield started


def sdk(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0)


async def create(gateway: Gateway, model: str, **extra: Any) -> Any:
    async with sdk(gateway) as client:
        return await client.chat.completions.with_raw_response.create(model=model, messages=HELLO, **extra)


@pytest.mark.parametrize(
    "failure",
    [status(500), status(503), status(429, headers={"retry-after": "0"}), drop()],
    ids=["500", "503", "429", "dropped-connection"],
)
async def test_a_failed_attempt_is_retried_on_the_same_target(pair: Gateway, mock: MockProvider, failure: Any) -> None:
    mock.queue(failure)
    raw = await create(pair, "a/model-a")
    assert raw.parse().choices[0].message.content == "echo:hello"
    assert raw.headers["x-isthmus-attempts"] == "2" and raw.headers["x-isthmus-route"] == "a/model-a"
    assert [seen.key for seen in mock.seen] == ["sk-a", "sk-a"]


async def test_an_exhausted_target_fails_over_to_the_next_one_of_the_alias(pair: Gateway, mock: MockProvider) -> None:
    mock.queue(status(500), status(500), status(500))
    raw = await create(pair, "chain")
    assert raw.headers["x-isthmus-route"] == "b/model-b" and raw.headers["x-isthmus-attempts"] == "4"
    assert [seen.body["model"] for seen in mock.seen] == ["model-a"] * 3 + ["model-b"]
    record = pair.llm_records()[-1]
    assert record.target == "chain" and record.details["route"] == "b/model-b" and record.details["attempts"] == 4
    assert len(record.details["failures"]) == 1


async def test_request_fallbacks_are_tried_after_a_not_found(pair: Gateway, mock: MockProvider) -> None:
    mock.queue(status(404, "no such model"))
    raw = await create(pair, "a/missing", extra_body={"fallbacks": ["b/model-b"]})
    assert raw.headers["x-isthmus-route"] == "b/model-b" and raw.headers["x-isthmus-attempts"] == "2"
    assert "fallbacks" not in mock.seen[1].body


async def test_a_bad_request_is_answered_without_retry_or_fallback(pair: Gateway, mock: MockProvider) -> None:
    mock.queue(status(400, "temperature must be <= 2"))
    with pytest.raises(openai.BadRequestError) as caught:
        await create(pair, "chain")
    assert "temperature must be <= 2" in str(caught.value)
    assert len(mock.seen) == 1


async def test_a_retry_after_longer_than_backoff_max_moves_to_the_next_target(
    pair: Gateway, mock: MockProvider
) -> None:
    mock.queue(status(429, headers={"retry-after": "30"}))
    raw = await create(pair, "chain")
    assert raw.headers["x-isthmus-route"] == "b/model-b" and raw.headers["x-isthmus-attempts"] == "2"


async def test_every_target_failing_gives_the_last_error(pair: Gateway, mock: MockProvider) -> None:
    mock.queue(*[status(503, "overloaded")] * 6)
    with pytest.raises(openai.InternalServerError) as caught:
        await create(pair, "chain")
    assert caught.value.status_code == 503 and "overloaded" in str(caught.value)
    assert caught.value.response.headers["x-isthmus-attempts"] == "6"


async def test_garbage_from_a_provider_is_a_502_and_the_gateway_keeps_serving(
    pair: Gateway, mock: MockProvider
) -> None:
    mock.queue(garbage())
    with pytest.raises(openai.APIStatusError) as caught:
        await create(pair, "a/model-a")
    assert caught.value.status_code == 502 and "not JSON" in str(caught.value)
    assert (await create(pair, "a/model-a")).parse().choices[0].message.content == "echo:hello"


async def test_a_refused_provider_key_cools_down_and_the_next_key_answers(tmp_path: Path, mock: MockProvider) -> None:
    providers = {"p": provider(mock, "sk-one", "sk-two")}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        mock.queue(status(401, "invalid api key"))
        raw = await create(gateway, "p/m")
        refused, used = mock.seen[0].key, mock.seen[1].key
        assert refused != used and raw.headers["x-isthmus-attempts"] == "2"
        for _ in range(6):
            await create(gateway, "p/m")
        assert {seen.key for seen in mock.seen[2:]} == {used}


async def test_all_keys_refused_is_a_502_that_does_not_blame_the_client(tmp_path: Path, mock: MockProvider) -> None:
    async with serve_gateway(settings_for(tmp_path, {"p": provider(mock, "sk-one")})) as gateway:
        mock.queue(status(403, "key disabled"))
        with pytest.raises(openai.APIStatusError) as caught:
            await create(gateway, "p/m")
        assert caught.value.status_code == 502
        with pytest.raises(openai.APIStatusError) as again:
            await create(gateway, "p/m")
    assert again.value.status_code == 503 and "cooling down" in str(again.value)
    assert len(mock.seen) == 1


async def test_a_provider_without_a_key_set_is_skipped_with_a_clear_reason(tmp_path: Path, mock: MockProvider) -> None:
    providers = {"p": provider(mock, {"value": ""}), "q": provider(mock, "sk-q")}
    models = {"both": {"targets": ["p/m", "q/m"]}}
    async with serve_gateway(settings_for(tmp_path, providers, models=models)) as gateway:
        raw = await create(gateway, "both")
        with pytest.raises(openai.APIStatusError) as caught:
            await create(gateway, "p/m")
    assert raw.headers["x-isthmus-route"] == "q/m"
    assert caught.value.status_code == 503 and "no API key set" in str(caught.value)


async def test_a_failing_provider_trips_its_breaker_and_is_skipped(tmp_path: Path, mock: MockProvider) -> None:
    providers = {"a": provider(mock, "sk-a"), "b": provider(mock, "sk-b")}
    models = {"chain": {"targets": ["a/m", "b/m"]}}
    llm = {"max_retries": 0, "breaker_failures": 2, "breaker_cooldown": 300, "backoff_initial": 0.001}
    async with serve_gateway(settings_for(tmp_path, providers, models=models, llm=llm)) as gateway:
        mock.queue(status(500), None, status(500), None)
        for _ in range(2):
            await create(gateway, "chain")
        assert [seen.key for seen in mock.seen] == ["sk-a", "sk-b", "sk-a", "sk-b"]
        raw = await create(gateway, "chain")
        ready = gateway.proxy.readiness()
    assert [seen.key for seen in mock.seen[4:]] == ["sk-b"]
    assert raw.headers["x-isthmus-attempts"] == "1"
    assert ready["skipped"]["a"] == "circuit open"


async def test_keys_are_chosen_by_weight_among_those_serving_the_model(tmp_path: Path, mock: MockProvider) -> None:
    keys = [
        {"value": "sk-heavy", "weight": 3},
        {"value": "sk-light", "weight": 1},
        {"value": "sk-big", "models": ["big-*"]},
    ]
    async with serve_gateway(settings_for(tmp_path, {"p": provider(mock, *keys)})) as gateway:
        async with httpx2.AsyncClient(base_url=gateway.v1, headers={"authorization": f"Bearer {KEY}"}) as client:
            for _ in range(400):
                response = await client.post("/chat/completions", json={"model": "p/small", "messages": HELLO})
                assert response.status_code == 200
            big = await client.post("/chat/completions", json={"model": "p/big-1", "messages": HELLO})
            assert big.status_code == 200
    counts = Counter(seen.key for seen in mock.seen[:400])
    assert set(counts) == {"sk-heavy", "sk-light"}
    assert 0.68 < counts["sk-heavy"] / 400 < 0.82
    assert mock.seen[400].key in {"sk-heavy", "sk-light", "sk-big"}


async def test_a_stream_fails_over_before_its_first_byte(pair: Gateway, mock: MockProvider) -> None:
    mock.queue(status(500), status(500), status(500))
    async with sdk(pair) as client:
        raw = await client.chat.completions.with_raw_response.create(model="chain", messages=HELLO, stream=True)
        stream = raw.parse()
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "echo:hello"
    assert raw.headers["x-isthmus-route"] == "b/model-b" and raw.headers["x-isthmus-attempts"] == "4"


async def test_a_stream_that_breaks_after_its_first_byte_ends_with_an_error_event(
    pair: Gateway, mock: MockProvider
) -> None:
    frames = openai_frames({"model": "m", "stream_options": {"include_usage": True}}, "partial answer")[:2]
    frames.append(sse({"error": {"message": "upstream exploded", "type": "server_error"}}))
    mock.queue(stream_frames(frames))
    received: list[str] = []
    async with sdk(pair) as client:
        stream = await client.chat.completions.create(model="chain", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError, match="upstream exploded"):
            async for chunk in stream:
                received.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "partial" in "".join(received)
    assert len(mock.seen) == 1  # no failover once bytes reached the client
    record = (await pair.wait_records(1))[-1]
    assert record.status == 500 and record.reason == "upstream_status"


async def test_a_provider_that_stays_silent_times_out_and_the_next_target_answers(
    tmp_path: Path, mock: MockProvider
) -> None:
    providers = {"a": provider(mock, "sk-a"), "b": provider(mock, "sk-b")}
    models = {"chain": {"targets": ["a/m", "b/m"]}}
    llm = {"max_retries": 0, "read_timeout": 0.2, "backoff_initial": 0.001}
    async with serve_gateway(settings_for(tmp_path, providers, models=models, llm=llm)) as gateway:
        mock.queue(hang(1))
        raw = await create(gateway, "chain")
        record = (await gateway.wait_records(1))[0]
    assert raw.headers["x-isthmus-route"] == "b/m"
    assert record.details["failures"] == ["a/m: provider 'a' stayed silent longer than read_timeout (0.2 s)"]


async def test_a_provider_that_is_down_is_retried_then_failed_over(tmp_path: Path, mock: MockProvider) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    providers = {
        "dead": {"kind": "openai", "base_url": dead_url, "keys": [{"value": "sk"}]},
        "b": provider(mock, "sk-b"),
    }
    models = {"chain": {"targets": ["dead/m", "b/m"]}}
    async with serve_gateway(settings_for(tmp_path, providers, models=models)) as gateway:
        raw = await create(gateway, "chain")
        record = (await gateway.wait_records(1))[0]
    assert raw.headers["x-isthmus-route"] == "b/m" and raw.headers["x-isthmus-attempts"] == "4"
    assert "provider 'dead' could not be reached" in record.details["failures"][0]
