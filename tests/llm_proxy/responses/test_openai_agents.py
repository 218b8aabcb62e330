"""openai-agents on its default path (the Responses API) through the proxy, with only the base URL changed: its
tool loop runs over a provider that has only chat completions."""

from __future__ import annotations

import json

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool

from tests.llm_proxy.conftest import KEY, Gateway
from tests.llm_proxy.mock_provider import (
    MockProvider,
    tool_calls,
)

pytestmark = pytest.mark.anyio
CALLED: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather of a city."""
    CALLED.append(city)
    return f"18C in {city}"


def agent(gateway: Gateway, sdk: openai.AsyncOpenAI) -> Agent:
    model = OpenAIResponsesModel(model="mock/gpt-test", openai_client=sdk)
    return Agent(name="weather", instructions="answer briefly", model=model, tools=[get_weather])


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_agent_calls_its_tool_and_answers(gateway: Gateway, mock: MockProvider, streamed: bool) -> None:
    CALLED.clear()
    arguments = json.dumps({"city": "Paris"})
    mock.queue(tool_calls(("get_weather", arguments)))
    config = RunConfig(tracing_disabled=True)
    async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
        if streamed:
            run = Runner.run_streamed(agent(gateway, sdk), "weather-in-Paris?", run_config=config)
            async for _ in run.stream_events():
                pass
            output = run.final_output
        else:
            output = (await Runner.run(agent(gateway, sdk), "weather-in-Paris?", run_config=config)).final_output
    assert CALLED == ["Paris"]
    assert output == "echo:weather-in-Paris?"
    first, second = (seen.body for seen in mock.seen)
    assert first["messages"][0] == {"role": "system", "content": "answer briefly"}
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_0", "content": "18C in Paris"}
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_weather"
