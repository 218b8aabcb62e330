"""One model turn: assembled from streamed fragments, split between gateway and client tools, and the arguments
the gateway accepts."""

from __future__ import annotations

from llm_proxy.agent.host import ToolOutput
from llm_proxy.agent.turns import ToolCall, Turn, TurnAssembler, arguments_of, tool_message


def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> dict[str, object]:
    return {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def test_fragments_of_text_and_tool_calls_assemble_into_one_turn_and_only_text_is_relayed() -> None:
    assembler = TurnAssembler()
    relayed = [
        assembler.feed(chunk({"role": "assistant", "content": "Let me "})),
        assembler.feed(chunk({"content": "look."})),
        assembler.feed(chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "x__two"}}]})),
        assembler.feed(chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "x__one"}}]})),
        assembler.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]})),
        assembler.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]})),
        assembler.feed(chunk({}, "tool_calls")),
        assembler.feed({"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
    ]
    turn = assembler.finish()
    assert relayed[:2] == [{"content": "Let me "}, {"content": "look."}]
    assert relayed[2:] == [{}] * 6
    assert turn.text == "Let me look."
    assert [(c.call_id, c.name, c.arguments) for c in turn.calls] == [("a", "x__one", '{"q": 1}'), ("b", "x__two", "")]
    assert turn.finish_reason == "tool_calls"
    assert assembler.usage is not None and (assembler.usage.tokens_in, assembler.usage.tokens_out) == (3, 4)


def test_a_turn_splits_into_gateway_and_client_calls_and_keeps_only_those_it_is_given() -> None:
    turn = Turn(text="", calls=[ToolCall("1", "fx__echo", "{}"), ToolCall("2", "mine", "{}")])
    gateway, client = turn.split({"fx__echo"})
    assert [c.name for c in gateway] == ["fx__echo"] and [c.name for c in client] == ["mine"]
    message = turn.assistant_message(client)
    assert message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "2", "type": "function", "function": {"name": "mine", "arguments": "{}"}}],
    }


def test_arguments_that_are_not_a_json_object_become_an_error_output_instead_of_a_call() -> None:
    assert arguments_of(ToolCall("1", "t", "")) == {}
    assert arguments_of(ToolCall("1", "t", '{"a": 1}')) == {"a": 1}
    for bad in ("{", "[1]", '"text"'):
        output = arguments_of(ToolCall("1", "t", bad))
        assert isinstance(output, ToolOutput) and output.is_error


def test_a_tool_error_reads_as_one_to_the_model() -> None:
    call = ToolCall("7", "t", "{}")
    assert tool_message(call, ToolOutput("fine")) == {"role": "tool", "tool_call_id": "7", "content": "fine"}
    assert tool_message(call, ToolOutput("boom", is_error=True))["content"] == "[tool error] boom"
