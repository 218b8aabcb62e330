"""`call_result` gives what the SDK session's `tools/call` adapter gives: the same model, or the same errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from mcp.client.session import _CallToolResultAdapter
from mcp_types import CallToolResult, InputRequiredResult, TextContent
from pydantic import ValidationError

from mcp_hub.upstreams import result_model
from mcp_hub.upstreams.result_model import call_result
from tests.json_fuzz_support import plain_values

text_items = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image"]), "text": st.one_of(st.text(max_size=5), plain_values())},
    optional={"annotations": plain_values(), "_meta": st.one_of(st.just({}), plain_values())},
)
items = st.one_of(
    text_items,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image", "resource_link"])},
        optional={"text": plain_values(), "data": plain_values(), "uri": plain_values(), "_meta": plain_values()},
    ),
    plain_values(),
)
results = st.fixed_dictionaries(
    {},
    optional={
        "content": st.one_of(st.lists(items, max_size=3), plain_values()),
        "structuredContent": plain_values(),
        "isError": st.one_of(st.booleans(), plain_values()),
        "resultType": st.sampled_from(["complete", "input_required", "other", 3]),
        "_meta": st.one_of(st.dictionaries(st.text(max_size=3), plain_values(), max_size=2), plain_values()),
        "inputRequests": st.one_of(st.just({}), plain_values()),
        "requestState": st.one_of(st.text(max_size=3), plain_values()),
    },
)


def outcome(validate: Any, raw: dict[str, Any]) -> tuple[Any, ...]:
    try:
        model = validate(raw)
    except ValidationError as exc:
        return ("refused", exc.errors(include_url=False, include_context=False), str(exc))
    items = getattr(model, "content", [])
    dumped = model.model_dump_json(by_alias=True, exclude_none=True)
    return (type(model), model, model.model_fields_set, [item.model_fields_set for item in items], dumped)


@settings(max_examples=1000, deadline=None)
@given(results)
def test_a_result_is_what_the_sdk_adapter_makes_of_it(raw: dict[str, Any]) -> None:
    expected = outcome(lambda value: _CallToolResultAdapter.validate_python(value, by_name=False), raw)
    assert outcome(lambda value: call_result(_CallToolResultAdapter, value), raw) == expected


class Union:
    """The SDK's adapter, noting whether it was asked."""

    def __init__(self) -> None:
        self.asked = False

    def validate_python(self, raw: Any, *, by_name: bool) -> Any:
        self.asked = True
        return _CallToolResultAdapter.validate_python(raw, by_name=by_name)


@pytest.mark.parametrize(
    ("raw", "asked"),
    [
        ({"content": [{"type": "text", "text": "hi"}], "isError": False}, False),
        ({"content": [{"type": "text", "text": "hi"}], "requestState": "s"}, True),
        ({"content": [{"type": "text", "text": "hi"}], "inputRequests": {}}, True),
        ({"resultType": "input_required"}, True),
    ],
)
def test_the_union_is_asked_only_where_its_second_member_could_accept(
    monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any], asked: bool
) -> None:
    union = Union()
    monkeypatch.setattr(result_model, "_CallToolResultAdapter", union)
    try:
        call_result(union, raw)  # type: ignore[arg-type]
    except ValidationError:
        pass
    assert union.asked is asked


def test_a_result_asking_for_input_is_the_second_member() -> None:
    raw = {"inputRequests": {}, "requestState": "s"}
    assert type(call_result(_CallToolResultAdapter, raw)) is InputRequiredResult
    assert type(call_result(_CallToolResultAdapter, {"content": []})) is CallToolResult


def test_text_items_are_validated_as_text_content_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def texts(content: Any, *, by_name: bool) -> Any:
        seen.append(content)
        return [TextContent(type="text", text=item["text"]) for item in content]

    monkeypatch.setattr(result_model, "_validate_texts", texts)
    text_only = {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    mixed = {"content": [{"type": "text", "text": "a"}, {"type": "image", "data": "", "mimeType": "image/png"}]}
    assert [item.text for item in call_result(_CallToolResultAdapter, text_only).content] == ["a", "b"]
    call_result(_CallToolResultAdapter, mixed)
    assert seen == [text_only["content"]]
