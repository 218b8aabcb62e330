"""`compact_encoder` writes what `json.dumps` with the same options writes, circular check included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from toolpolicy.json_text import compact_encoder

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_json_values, st.booleans(), st.booleans(), st.booleans())
def test_it_writes_what_json_dumps_writes(value: Any, sort_keys: bool, ensure_ascii: bool, circular: bool) -> None:
    encode = compact_encoder(sort_keys=sort_keys, ensure_ascii=ensure_ascii, check_circular=circular)
    options: dict[str, Any] = {"sort_keys": sort_keys, "ensure_ascii": ensure_ascii, "separators": (",", ":")}
    for message in (value, {"jsonrpc": "2.0", "id": 1, "result": value}):
        assert encode(message) == json.dumps(message, **options)
        assert encode(message) == encode(message)  # nothing kept from one call to the next


def test_a_value_referring_to_itself_is_refused_as_json_refuses_it_and_the_next_is_written() -> None:
    encode = compact_encoder(sort_keys=True, ensure_ascii=False)
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular reference detected"):
        encode(loop)
    assert encode({"a": [1, {"b": None}]}) == '{"a":[1,{"b":null}]}'


def test_what_json_cannot_write_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_encoder(check_circular=False)({"a": object()})
