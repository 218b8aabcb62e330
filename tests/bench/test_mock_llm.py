"""The mock provider speaks the OpenAI API as the official SDK expects it, plain and streamed."""

from __future__ import annotations

import asyncio
import json

import anyio
import openai
import pytest

from bench.mock_llm import MockProvider
from tests.bench.conftest import serve_on_loopback

pytestmark = pytest.mark.anyio


async def test_a_completion_reports_its_usage(llm_mock: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{llm_mock}/v1", api_key="sk-mock", max_retries=0)
    async with client:
        answer = await client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}])
    assert answer.model == "m1"
    assert answer.choices[0].message.content == "word " * 8
    assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 8)


async def test_a_paced_stream_sends_each_chunk_on_its_own() -> None:
    # The mock waits before each content chunk until the client has received the one before: a chunk held back
    # (buffered with the next) would never release the gate, so the stream completes only if each goes on its own.
    received: dict[int, asyncio.Event] = {index: asyncio.Event() for index in range(1, 5)}

    async def gate(index: int) -> None:
        await received[index].wait()

    arrivals = 0
    contents: list[str] = []
    async for url in serve_on_loopback(MockProvider(chunks=4, pause=gate)):
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-mock", max_retries=0)
        with anyio.fail_after(10):
            async with client:
                stream = await client.chat.completions.create(
                    model="m-paced",
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in stream:
                    arrivals += 1
                    if arrivals in received:
                        received[arrivals].set()
                    if chunk.choices and chunk.choices[0].delta.content:
                        contents.append(chunk.choices[0].delta.content)
                    if chunk.usage is not None:
                        usage = chunk.usage
    assert contents == ["w0 ", "w1 ", "w2 ", "w3 "]
    assert usage.completion_tokens == 4
    assert arrivals == 7  # role, 4 contents, finish, usage


async def test_bad_requests_are_refused_with_openai_errors(llm_mock: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{llm_mock}/v1", api_key="sk-mock", max_retries=0)
    async with client:
        with pytest.raises(openai.BadRequestError, match="'model' and 'messages'"):
            await client.chat.completions.create(model="m1", messages=[])
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="m1", input="x")


def test_a_one_model_streams_one_content_chunk_whatever_the_chunks_setting() -> None:
    provider = MockProvider(chunks=4)
    for model, contents in (("m-one", ["w0 "]), ("m", ["w0 ", "w1 ", "w2 ", "w3 "])):
        framed = b"".join(provider.stream_events(model, usage=True))
        events = [json.loads(line[6:]) for line in framed.split(b"\r\n") if line.startswith(b"data: {")]
        deltas = [event["choices"][0]["delta"].get("content") for event in events if event["choices"]]
        assert [delta for delta in deltas if delta] == contents
        assert events[-1]["usage"]["completion_tokens"] == len(contents)
