"""Agent mode on the Responses API end to end: the whole gateway in front of the scripted mock provider (an OpenAI
provider whose server has the Responses API) and the real fixture MCP server, driven by the official `openai` SDK's
`responses.create` and `responses.stream`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import openai
import pytest

from tests.llm_proxy.leaving import leave_while_thinking
from tests.llm_proxy.mock_provider import USAGE, MockProvider, answer_with_tool_results, tool_calls
from tests.mcp_hub.conftest import Gateway, fixture_server, hub_settings, serving
from toolpolicy.store.audit_log import AuditQuery

pytestmark = pytest.mark.anyio

AGENT_KEY = "isk-resp-agent"
HOSTED_KEY = "isk-resp-hosted"
OTHER_KEY = "isk-resp-other"
NO_MCP_KEY = "isk-resp-no-mcp"
THRIFTY_KEY = "isk-resp-thrifty"
MODEL = "mock/agent-1"
FIXTURE = {"fixture": ["echo", "add", "fail"]}
KEYS = (
    {
        "name": "resp-agent",
        "value": AGENT_KEY,
        "models": ["mock/*"],
        "mcp": FIXTURE,
        "agent": {"tools": ["fixture__*"]},
    },
    {"name": "resp-hosted", "value": HOSTED_KEY, "models": ["mock/*"], "mcp": FIXTURE},
    {"name": "resp-other", "value": OTHER_KEY, "models": ["mock/*"], "mcp": FIXTURE},
    {"name": "resp-no-mcp", "value": NO_MCP_KEY, "models": ["mock/*"]},
    # Each model call reserves $0.02 (20 output tokens at $0.001) and spends $0.007: the third no longer fits.
    {
        "name": "resp-thrifty",
        "value": THRIFTY_KEY,
        "models": ["mock/*"],
        "mcp": FIXTURE,
        "budgets": [{"max_usd": 0.03}],
    },
)


def hosted(approval: Any = "never", allowed: Any = None, label: str = "fixture") -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "mcp", "server_label": label, "require_approval": approval}
    if allowed is not None:
        tool["allowed_tools"] = allowed
    return tool


@pytest.fixture(scope="module")
async def mock() -> AsyncIterator[MockProvider]:
    provider = MockProvider()
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, mock: MockProvider) -> AsyncIterator[Gateway]:
    provider = {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}], "responses": "native"}
    settings = hub_settings(
        tmp_path_factory.mktemp("responses-agent"),
        {"fixture": fixture_server(timeout=10)},
        keys=KEYS,
        providers={"mock": provider},
        pricing={"mock/*": {"input": 0, "output": 1000}},
    )
    async with serving(settings, both_halves=True) as started:
        yield started


@pytest.fixture(autouse=True)
def fresh_script(mock: MockProvider) -> None:
    mock.pending.clear()
    mock.seen.clear()


@pytest.fixture
async def clients(gateway: Gateway) -> AsyncIterator[dict[str, openai.AsyncOpenAI]]:
    opened: dict[str, openai.AsyncOpenAI] = {}
    for key in (AGENT_KEY, HOSTED_KEY, OTHER_KEY, NO_MCP_KEY, THRIFTY_KEY):
        opened[key] = openai.AsyncOpenAI(api_key=key, base_url=f"{gateway.base_url}/v1", max_retries=0)
    yield opened
    for client in opened.values():
        await client.close()


async def records(gateway: Gateway, kind: str, request_id: str) -> list[dict[str, Any]]:
    await gateway.governance.audit.flush()
    rows, _ = await gateway.governance.audit_log.query(AuditQuery(kind=kind, limit=500))
    return [row for row in rows if row["request_id"] == request_id]


def offered(body: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in body.get("tools") or ()]


async def test_a_hosted_mcp_tool_runs_on_the_hub_and_comes_back_as_mcp_items(
    gateway: Gateway, mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]
) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "hello"})), answer_with_tool_results())
    with anyio.fail_after(30):
        raw = await clients[HOSTED_KEY].responses.with_raw_response.create(
            model=MODEL,
            input="say hello through the tool",
            tools=[hosted("never", ["echo"])],  # type: ignore[list-item]
            extra_headers={"x-request-id": "resp-hosted"},
        )
    response = raw.parse()
    assert response.status == "completed" and response.output_text == "used:hello"
    listed, call, message = response.output
    assert listed.type == "mcp_list_tools" and listed.id.startswith("mcpl_") and listed.server_label == "fixture"
    assert [tool.name for tool in listed.tools] == ["echo"]  # allowed_tools narrows the server
    assert listed.tools[0].input_schema["properties"]["text"]["type"] == "string"  # type: ignore[index]
    assert call.type == "mcp_call" and call.id.startswith("mcp_")
    assert (call.server_label, call.name, json.loads(call.arguments)) == ("fixture", "echo", {"text": "hello"})
    assert (call.output, call.error, call.status) == ("hello", None, "completed")
    assert message.type == "message"
    assert response.usage is not None and response.usage.output_tokens == 2 * USAGE["completion_tokens"]
    assert raw.headers["x-isthmus-agent-steps"] == "2"
    # The loop runs in chat format even though the provider has the Responses API.
    assert [seen.path for seen in mock.seen] == ["/v1/chat/completions"] * 2
    assert offered(mock.seen[0].body) == ["fixture__echo"]
    assert mock.seen[1].body["messages"][-1] == {"role": "tool", "tool_call_id": "call_0", "content": "hello"}
    (tool_call,) = await records(gateway, "tool_call", "resp-hosted")
    assert (tool_call["target"], tool_call["details"]["via"]) == ("fixture/echo", "agent")
    (llm,) = await records(gateway, "llm", "resp-hosted")
    assert llm["details"]["endpoint"] == "responses"
    assert llm["details"]["agent"] == {"steps": 2, "tools": ["fixture__echo"], "stopped": "answered"}
    stored = await clients[HOSTED_KEY].responses.retrieve(response.id)
    assert [item.type for item in stored.output] == ["mcp_list_tools", "mcp_call", "message"]


async def test_a_streamed_hosted_mcp_run_sends_openais_event_sequence(
    gateway: Gateway, mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]
) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "streamed"}), say="Looking."), answer_with_tool_results())
    with anyio.fail_after(30):
        async with clients[HOSTED_KEY].responses.stream(
            model=MODEL,
            input="stream it",
            tools=[hosted("never", {"tool_names": ["echo"]})],  # type: ignore[list-item]
        ) as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # mcp_list_tools
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.output_item.done",
        "response.output_item.added",  # the first step's text
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",  # mcp_call
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
        "response.output_item.added",  # the answer
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert [item.type for item in final.output] == ["mcp_list_tools", "message", "mcp_call", "message"]
    call = final.output[2]
    assert call.type == "mcp_call" and call.output == "streamed" and call.name == "echo"
    assert final.output_text == "Looking.used:streamed"  # two message items
    assert final.usage is not None and final.usage.output_tokens == 2 * USAGE["completion_tokens"]
    fetched = await clients[HOSTED_KEY].responses.retrieve(final.id)
    assert [item.type for item in fetched.output] == ["mcp_list_tools", "message", "mcp_call", "message"]


async def test_a_key_in_agent_mode_gets_the_loop_on_responses_streamed_and_not(
    mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]
) -> None:
    client = clients[AGENT_KEY]
    mock.queue(tool_calls(("fixture__add", {"a": 2, "b": 3})), answer_with_tool_results())
    with anyio.fail_after(30):
        response = await client.responses.create(model=MODEL, input="add 2 and 3")
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert response.output_text == "used:5"
    assert set(offered(mock.seen[0].body)) == {"fixture__echo", "fixture__add", "fixture__fail"}
    mock.seen.clear()
    mock.queue(tool_calls(("fixture__fail", {})), answer_with_tool_results())
    with anyio.fail_after(30):
        async with client.responses.stream(model=MODEL, input="fail please") as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
    assert "response.mcp_call.failed" in kinds
    failed = final.output[1]
    assert failed.type == "mcp_call" and failed.status == "failed" and failed.output is None
    assert failed.error is not None and failed.error.type == "mcp_tool_execution_error"
    assert mock.seen[1].body["messages"][-1]["content"].startswith("[tool error]")
    assert [seen.path for seen in mock.seen] == ["/v1/chat/completions"] * 2


async def test_a_key_without_agent_mode_and_no_mcp_tool_is_served_natively(
    mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]
) -> None:
    response = await clients[HOSTED_KEY].responses.create(model=MODEL, input="plain")
    assert response.output_text == "native:plain"
    assert [seen.path for seen in mock.seen] == ["/v1/responses"]


async def test_an_approved_call_runs_on_the_continuation_and_the_chain_replays_it(
    gateway: Gateway, mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]
) -> None:
    client = clients[HOSTED_KEY]
    tools = [hosted("always")]
    mock.queue(tool_calls(("fixture__echo", {"text": "secret"})))
    with anyio.fail_after(30):
        first = await client.responses.create(
            model=MODEL,
            input="echo secret",
            tools=tools,  # type: ignore[arg-type]
            extra_headers={"x-request-id": "resp-ask"},
        )
    assert first.status == "completed"
    assert [item.type for item in first.output] == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    assert request.type == "mcp_approval_request" and request.id.startswith("mcpr_")
    assert (request.server_label, request.name, json.loads(request.arguments)) == (
        "fixture",
        "echo",
        {"text": "secret"},
    )
    assert await records(gateway, "tool_call", "resp-ask") == []  # nothing ran before the approval
    approval = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    mock.queue(answer_with_tool_results())
    with anyio.fail_after(30):
        second = await client.responses.create(
            model=MODEL,
            previous_response_id=first.id,
            input=[approval],  # type: ignore[list-item]
            tools=tools,  # type: ignore[arg-type]
            extra_headers={"x-request-id": "resp-approved"},
        )
    assert [item.type for item in second.output] == ["mcp_list_tools", "mcp_call", "message"]
    call = second.output[1]
    assert call.type == "mcp_call" and call.approval_request_id == request.id and call.output == "secret"
    assert second.output_text == "used:secret"
    (ran,) = await records(gateway, "tool_call", "resp-approved")
    assert ran["details"]["via"] == "agent"
    (llm,) = await records(gateway, "llm", "resp-approved")
    assert llm["details"]["agent"] == {"steps": 1, "tools": ["fixture__echo"], "stopped": "answered"}
    assistant, result = mock.seen[1].body["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == request.id
    assert assistant["tool_calls"][0]["function"]["name"] == "fixture__echo"
    assert result == {"role": "tool", "tool_call_id": request.id, "content": "secret"}
    listed = await client.responses.input_items.list(second.id)
    assert "mcp_approval_response" in [item.type for item in listed.data]
    # A later turn replays the approved call as the model made and saw it, in order.
    third = await client.responses.create(model=MODEL, previous_response_id=second.id, input="thanks")
    assert third.output_text == "echo:thanks"
    roles = [(m["role"], m.get("tool_call_id")) for m in mock.seen[2].body["messages"]]
    assert roles == [("user", None), ("assistant", None), ("tool", request.id), ("assistant", None), ("user", None)]


async def test_a_denied_call_is_not_run_and_the_model_is_told(
    gateway: Gateway, mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]
) -> None:
    client = clients[HOSTED_KEY]
    tools = [hosted({"never": {"tool_names": ["add"]}})]  # echo needs approval, add does not
    mock.queue(tool_calls(("fixture__echo", {"text": "nope"})))
    first = await client.responses.create(model=MODEL, input="echo nope", tools=tools)  # type: ignore[arg-type]
    request = first.output[-1]
    assert request.type == "mcp_approval_request"
    denial = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}
    mock.queue(answer_with_tool_results())
    with anyio.fail_after(30):
        second = await client.responses.create(
            model=MODEL,
            previous_response_id=first.id,
            input=[denial],  # type: ignore[list-item]
            tools=tools,  # type: ignore[arg-type]
            extra_headers={"x-request-id": "resp-denied"},
        )
    assert [item.type for item in second.output] == ["mcp_list_tools", "message"]
    assert "denied" in second.output_text
    assert await records(gateway, "tool_call", "resp-denied") == []
    result = mock.seen[1].body["messages"][-1]
    assert result["role"] == "tool" and result["tool_call_id"] == request.id and "denied" in result["content"]
    with pytest.raises(openai.BadRequestError) as answered_twice:
        await client.responses.create(
            model=MODEL,
            previous_response_id=second.id,
            input=[{**denial, "approve": True}],  # type: ignore[list-item]
            tools=tools,  # type: ignore[arg-type]
        )
    assert answered_twice.value.body["param"] == "input[0].approval_request_id"  # type: ignore[index]


async def test_another_key_cannot_approve_a_call(mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]) -> None:
    tools = [hosted("always")]
    mock.queue(tool_calls(("fixture__echo", {"text": "mine"})))
    first = await clients[HOSTED_KEY].responses.create(model=MODEL, input="echo", tools=tools)  # type: ignore[arg-type]
    approval = {"type": "mcp_approval_response", "approval_request_id": first.output[-1].id, "approve": True}
    with pytest.raises(openai.NotFoundError):
        await clients[OTHER_KEY].responses.create(
            model=MODEL,
            previous_response_id=first.id,
            input=[approval],  # type: ignore[list-item]
            tools=tools,  # type: ignore[arg-type]
        )
    assert len(mock.seen) == 1


@pytest.mark.parametrize(
    ("key", "tool", "param"),
    [
        (NO_MCP_KEY, hosted(), "tools[0].server_label"),  # the key's MCP allowlist has no fixture
        (HOSTED_KEY, hosted(label="nowhere"), "tools[0].server_label"),
        (HOSTED_KEY, hosted(allowed=["slow"]), "tools[0].allowed_tools"),  # not in the key's allowlist
        (HOSTED_KEY, {**hosted(), "server_url": "https://mcp.example.com"}, "tools[0].server_url"),
        (HOSTED_KEY, hosted(approval="sometimes"), "tools[0].require_approval"),
    ],
)
async def test_an_mcp_tool_the_gateway_cannot_serve_is_a_400_naming_it(
    mock: MockProvider, clients: dict[str, openai.AsyncOpenAI], key: str, tool: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await clients[key].responses.create(model=MODEL, input="hi", tools=[tool])  # type: ignore[list-item]
    assert refused.value.body["param"] == param  # type: ignore[index]
    assert mock.seen == []


async def test_a_client_function_tool_passes_through_alongside_mcp_tools(
    mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]
) -> None:
    function = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    mock.queue(tool_calls(("get_weather", {"city": "Paris"})))
    with anyio.fail_after(30):
        response = await clients[HOSTED_KEY].responses.create(
            model=MODEL,
            input="weather?",
            tools=[hosted("never", ["echo"]), function],  # type: ignore[list-item]
        )
    assert [item.type for item in response.output] == ["mcp_list_tools", "function_call"]
    call = response.output[1]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id == "call_0"
    assert offered(mock.seen[0].body) == ["get_weather", "fixture__echo"]
    assert len(mock.seen) == 1


async def test_a_step_the_budget_cannot_cover_ends_the_loop(
    gateway: Gateway, mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]
) -> None:
    mock.queue(*[tool_calls(("fixture__echo", {"text": f"round{n}"})) for n in range(3)])
    with anyio.fail_after(30):
        response = await clients[THRIFTY_KEY].responses.create(
            model=MODEL,
            input="loop",
            tools=[hosted()],  # type: ignore[list-item]
            max_output_tokens=20,
            extra_headers={"x-request-id": "resp-budget"},
        )
    assert response.output_text.startswith("[isthmus agent mode] Stopped before model call 3")
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call", "mcp_call", "message"]
    assert len(mock.seen) == 2
    (llm,) = await records(gateway, "llm", "resp-budget")
    assert llm["details"]["agent"]["stopped"] == "budget"


async def test_a_streamed_approval_request_ends_the_stream_with_its_item(
    gateway: Gateway, mock: MockProvider, clients: dict[str, openai.AsyncOpenAI]
) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "later"})))
    with anyio.fail_after(30):
        async with clients[HOSTED_KEY].responses.stream(
            model=MODEL,
            input="echo later",
            tools=[hosted("always", ["echo"])],  # type: ignore[list-item]
            extra_headers={"x-request-id": "resp-ask-stream"},
        ) as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
    added = [event.item.type for event in events if event.type == "response.output_item.added"]
    assert added == ["mcp_list_tools", "mcp_approval_request"]
    assert events[-1].type == "response.completed"
    assert final.status == "completed"
    request = final.output[-1]
    assert request.type == "mcp_approval_request" and request.name == "echo"
    assert json.loads(request.arguments) == {"text": "later"}
    assert await records(gateway, "tool_call", "resp-ask-stream") == []
    (llm,) = await records(gateway, "llm", "resp-ask-stream")
    assert llm["details"]["agent"]["stopped"] == "client_tools"


async def test_a_client_leaving_before_the_first_event_cancels_the_first_model_call_then(
    gateway: Gateway, mock: MockProvider
) -> None:
    body = {"model": MODEL, "input": "add 2 and 3", "stream": True}
    async with gateway.http(AGENT_KEY, **{"x-request-id": "resp-agent-left"}) as client:
        await leave_while_thinking(client, mock, "/v1/responses", body)
    (llm,) = await records(gateway, "llm", "resp-agent-left")
    assert llm["status"] == 499 and llm["reason"] == "client_disconnected"
    assert llm["details"]["agent"]["steps"] == 1 and len(mock.seen) == 1
