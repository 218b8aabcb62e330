"""Names callers send: refused before anything routes on them or echoes them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from toolpolicy import sanitize
from toolpolicy.errors import InvalidRequest
from toolpolicy.names import header_value, model_name, tool_name


@pytest.mark.parametrize("name", ["mock/a\x00b", "mock/a\r\nx-evil: 1", "mock/\ud800", "mock/" + "a" * 300, "", "a b"])
def test_a_model_name_that_cannot_name_a_model_is_refused(name: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        model_name(name, param="fallbacks[0]")
    assert refused.value.param == "fallbacks[0]" and refused.value.status == 400


@pytest.mark.parametrize("name", ["openai/gpt-4o-mini", "accounts/fireworks/models/llama-v3p1-8b", "fast", "m:free"])
def test_real_model_names_pass(name: str) -> None:
    assert model_name(name) == name


@pytest.mark.parametrize("name", ["fx__a\x00b", "fx__\ud800", "x" * 257, "", "tab\there", "\u202e"])
def test_a_tool_name_that_cannot_name_a_tool_is_refused(name: str) -> None:
    with pytest.raises(InvalidRequest):
        tool_name(name)


def test_tool_names_may_use_any_script() -> None:
    assert tool_name("wiki__搜索") == "wiki__搜索"


@settings(max_examples=100, deadline=None, database=None)
@given(st.text())
def test_request_ids_and_header_values_are_always_safe_to_send(text: str) -> None:
    request_id = sanitize.request_id(text, lambda: "fresh")
    assert request_id == "fresh" or (request_id == text and 0 < len(text) <= 64 and text.isascii())
    value = header_value(text)
    assert value.isascii() and value.isprintable() and len(value) <= 256
