"""Gateway-served sampling's parts on their own: the MCP request as a chat completion and back, the `sampling:`
config, and a hub without an LLM proxy to answer with."""

from __future__ import annotations

from typing import Any, cast

import mcp_types as types
import pytest
from hypothesis import given, strategies as st
from mcp.server.session import ServerSession
from pydantic import ValidationError

from mcp_hub.access import Caller
from mcp_hub.relay.calls import Downstream
from mcp_hub.relay.gateway_sampling import NO_LLM_PROXY, GatewayLlm, ServerSampling
from mcp_hub.relay.sampling_wire import Untranslatable, chat_body, create_message_result
from toolpolicy.sampling_settings import SamplingSettings
from toolpolicy.settings import GatewaySettings
from toolpolicy.types import Principal


def text_message(role: str, text: str) -> types.SamplingMessage:
    return types.SamplingMessage(role=role, content=types.TextContent(type="text", text=text))  # type: ignore[arg-type]


def params(**fields: Any) -> types.CreateMessageRequestParams:
    fields.setdefault("messages", [text_message("user", "hi")])
    fields.setdefault("max_tokens", 100)
    return types.CreateMessageRequestParams(**fields)


@given(asked=st.integers(min_value=1, max_value=10**9), cap=st.integers(min_value=1, max_value=10**9))
def test_max_tokens_is_lowered_to_the_configured_cap_never_raised(asked: int, cap: int) -> None:
    assert chat_body(params(max_tokens=asked), cap)["max_tokens"] == min(asked, cap)


@given(
    texts=st.lists(st.text(max_size=20), min_size=1, max_size=5),
    system=st.none() | st.text(min_size=1, max_size=20),
    temperature=st.none() | st.floats(min_value=0, max_value=2),
    stops=st.none() | st.lists(st.text(min_size=1, max_size=5), max_size=3),
)
def test_text_messages_system_prompt_temperature_and_stops_cross_as_chat_fields(
    texts: list[str], system: str | None, temperature: float | None, stops: list[str] | None
) -> None:
    roles = ["user", "assistant"]
    messages = [text_message(roles[index % 2], value) for index, value in enumerate(texts)]
    body = chat_body(params(messages=messages, system_prompt=system, temperature=temperature, stop_sequences=stops), 50)
    expected = [{"role": roles[index % 2], "content": value} for index, value in enumerate(texts)]
    assert body["messages"] == ([{"role": "system", "content": system}] if system else []) + expected
    assert body.get("temperature") == temperature
    assert body.get("stop") == (stops or None)
    assert "model" not in body


def test_an_image_becomes_a_data_url_part_beside_the_text() -> None:
    image = types.ImageContent(type="image", data="aGk=", mime_type="image/png")
    message = types.SamplingMessage(role="user", content=[types.TextContent(type="text", text="what is it?"), image])
    body = chat_body(params(messages=[message]), 10)
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}},
    ]


def test_audio_and_tools_are_refused_naming_what() -> None:
    audio = types.SamplingMessage(role="user", content=types.AudioContent(type="audio", data="aGk=", mime_type="a/b"))
    with pytest.raises(Untranslatable, match=r"messages\[0\].content: audio content"):
        chat_body(params(messages=[audio]), 10)
    tool = types.Tool(name="t", input_schema={"type": "object"})
    with pytest.raises(Untranslatable, match="without tools"):
        chat_body(params(tools=[tool]), 10)


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "endTurn"), ("length", "maxTokens"), ("tool_calls", "toolUse"), ("content_filter", "content_filter")],
)
def test_the_answer_maps_back_with_its_stop_reason(finish: str, stop_reason: str) -> None:
    completion = {"choices": [{"message": {"role": "assistant", "content": "4"}, "finish_reason": finish}]}
    result = create_message_result(completion, "mock/echo-1")
    assert result == types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="4"),
        model="mock/echo-1",
        stop_reason=stop_reason,
    )


def test_sampling_config_names_a_known_model_and_a_valid_when() -> None:
    base: dict[str, Any] = {"providers": {"mock": {"kind": "echo"}}, "models": {"fast": {"targets": ["mock/a"]}}}

    def with_sampling(sampling: dict[str, Any]) -> GatewaySettings:
        server = {"command": "srv", "sampling": sampling}
        return GatewaySettings.model_validate({**base, "mcp_servers": {"srv": server}})

    assert with_sampling({"model": "fast"}).mcp_servers["srv"].sampling == SamplingSettings(
        model="fast", max_tokens=1024, when="client_lacks"
    )
    with pytest.raises(ValidationError, match=r"mcp_servers.srv.sampling.model: no provider named 'openai'"):
        with_sampling({"model": "openai/gpt-4o", "max_tokens": 10})
    with pytest.raises(ValidationError, match="neither an alias in models nor 'provider/model'"):
        with_sampling({"model": "slow"})
    with pytest.raises(ValidationError, match="when"):
        with_sampling({"model": "fast", "when": "sometimes"})
    with pytest.raises(ValidationError, match="max_tokens"):
        with_sampling({"model": "fast", "max_tokens": 0})


def test_only_sampling_requests_are_answered_and_only_when_the_config_says() -> None:
    sampling = types.CreateMessageRequest(params=params())

    def answers(when: str, request: Any, client_can_answer: bool) -> bool:
        gateway = ServerSampling(SamplingSettings(model="m/x", when=when), GatewayLlm())  # type: ignore[arg-type]
        return gateway.answers(request, client_can_answer=client_can_answer)

    assert [answers(when, sampling, True) for when in ("client_lacks", "always", "never")] == [False, True, False]
    assert [answers(when, sampling, False) for when in ("client_lacks", "always", "never")] == [True, True, False]
    assert not answers("always", types.ListRootsRequest(), False)


@pytest.mark.anyio
async def test_without_an_llm_proxy_the_upstream_is_told_so() -> None:
    downstream = Downstream(
        session=cast(ServerSession, None),
        request_id=1,
        protocol_version="2025-11-25",
        capabilities=None,
        meta=None,
        connection=None,
        caller=Caller(Principal(key_id="k", key_name="k"), "secret"),
        call_id="c",
    )
    served = await GatewayLlm().complete(SamplingSettings(model="m/x"), downstream, params())
    assert served.outcome == types.ErrorData(code=types.INTERNAL_ERROR, message=NO_LLM_PROXY)
