"""A provider's JSON answer is read into exactly what `json.loads` reads, by the faster parser or by `json.loads`."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from llm_proxy.errors import UpstreamBadResponse
from llm_proxy.upstream import parse_json, parse_object


def same(left: object, right: object) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0), NaN equal to NaN."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return (math.isnan(left) and math.isnan(right)) or left == right  # type: ignore[arg-type]
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)  # type: ignore[call-overload]
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))  # type: ignore[arg-type]
    return left == right


@pytest.mark.parametrize(
    "raw",
    [
        b'{"usage": {"prompt_tokens": 12, "completion_tokens": 8}, "choices": [{"message": {"content": "hi"}}]}',
        b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e400, "e": -0.0, "f": 1E2, "g": 1.0}',
        b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',
        b'{"k": 1, "k": 2}',
        b'{"text": "\\ud800 a lone surrogate"}',
        b'{"text": "\\ud83d\\ude00 \xc3\xa9 \\u00e9"}',
        "\ufeff".encode() + b'{"bom": true}',
        json.dumps({"utf16": "answer"}).encode("utf-16"),
        json.dumps({"utf32": "answer"}).encode("utf-32-le"),
        b"[" * 300 + b"]" * 300,
        b'  \n {"spaced": [1, 2.5, null, true, false]}  \n',
    ],
)
def test_an_answer_reads_as_json_loads_reads_it(raw: bytes) -> None:
    assert same(parse_json("p", raw), json.loads(raw))


@settings(max_examples=100, deadline=None, database=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    ),
    ascii_only=st.booleans(),
)
def test_any_json_reads_as_json_loads_reads_it(value: object, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        expected = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        with pytest.raises(UpstreamBadResponse):
            parse_json("p", raw)
        return
    assert same(parse_json("p", raw), expected)


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"a": 1', b"\xff\xfe\xfa", b'{"a": 1}}'])
def test_what_is_not_json_is_a_bad_response_naming_the_provider(raw: bytes) -> None:
    with pytest.raises(UpstreamBadResponse, match="provider 'p' answered something that is not JSON"):
        parse_json("p", raw)


def test_an_answer_must_be_an_object() -> None:
    with pytest.raises(UpstreamBadResponse, match="JSON that is not an object"):
        parse_object("p", b"[1]")
