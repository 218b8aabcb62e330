"""The mock provider speaks the OpenAI API as the official SDK expects it, plain and streamed."""

from __future__ import annotations

import time

import anyio
import openai
import pytest

pytestmark = pytest.mark.anyio


async def test_a_completion_reports_its_usage(llm_mock: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{llm_mock}/v1", api_key="sk-mock", max_retries=0)
    async with client:
        answer = await client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}])
    assert answer.model == "m1"
    assert answer.choices[0].message.content == "word " * 8
    assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 8)


async def test_a_paced_stream_sends_each_chunk_on_its_own(llm_mock: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{llm_mock}/v1", api_key="sk-mock", max_retries=0)
    arrivals: list[float] = []
    contents: list[str] = []
    with anyio.fail_after(10):
        async with client:
            stream = await client.chat.completions.create(
                model="m-paced",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                arrivals.append(time.perf_counter())
                if chunk.choices and chunk.choices[0].delta.content:
                    contents.append(chunk.choices[0].delta.content)
                if chunk.usage is not None:
                    usage = chunk.usage
    assert contents == ["w0 ", "w1 ", "w2 ", "w3 "]
    assert usage.completion_tokens == 4
    # role, 4 contents, finish, usage: the 4 content chunks are paced 20 ms apart, so the stream spans 80 ms or more.
    assert len(arrivals) == 7
    assert arrivals[4] - arrivals[0] >= 0.075


async def test_bad_requests_are_refused_with_openai_errors(llm_mock: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{llm_mock}/v1", api_key="sk-mock", max_retries=0)
    async with client:
        with pytest.raises(openai.BadRequestError, match="'model' and 'messages'"):
            await client.chat.completions.create(model="m1", messages=[])
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="m1", input="x")
