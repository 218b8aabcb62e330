"""The shared body reader and decoder every JSON edge uses."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings, strategies as st

from toolpolicy.errors import InvalidRequest, PayloadTooLarge
from toolpolicy.jsonbody import MAX_DEPTH, _maybe_non_finite, decode_json, decode_json_object, read_body

pytestmark = pytest.mark.anyio


@dataclass
class Body:
    chunks: list[bytes]
    headers: Mapping[str, str] = field(default_factory=dict)
    read: int = 0

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.read += 1
            yield chunk


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"[" * 100_000, f"deeper than {MAX_DEPTH} levels"),
        (b'{"a":' + b"1" * 1_000_000 + b"}", "number too large"),
        (b'{"max_tokens": ' + b"9" * 4301 + b"}", "number too large"),
        (b'{"a": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"a": "\\udfff"}', "lone UTF-16 surrogate"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b'{"a": 1', "not valid JSON"),
    ],
)
def test_hostile_json_is_refused_with_a_reason(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode_json(raw)
    assert words in refused.value.message and refused.value.status == 400


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"temperature": NaN}', "temperature"),
        (b'{"budgets": [{"max_usd": Infinity}]}', "budgets[0].max_usd"),
        (b'{"budgets": [{"max_usd": -Infinity}]}', "budgets[0].max_usd"),
        (b'{"budgets": [{"max_usd": 1e309}]}', "budgets[0].max_usd"),
        (b"[1, 2, 1E+400]", "[2]"),
    ],
)
def test_non_finite_numbers_are_refused_naming_where_they_are(raw: bytes, path: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode_json(raw)
    assert refused.value.param == path and refused.value.message.startswith(f"{path}: numbers must be finite")


def test_nesting_up_to_the_limit_and_big_but_finite_numbers_are_fine() -> None:
    assert decode_json(b"[" * 150 + b"]" * 150) is not None
    assert decode_json(b'{"n": 1e308, "m": 1e-400, "text": "NaN Infinity e999"}') == {
        "n": 1e308,
        "m": 0.0,
        "text": "NaN Infinity e999",
    }
    assert decode_json(b'"\\ud83d\\ude00"') == "\U0001f600"  # a surrogate pair is a character


NON_FINITE_HINT = re.compile(rb"NaN|Infinity|[eE][+-]?[0-9]{3}|[0-9]{309}")
"""What may hold a non-finite number, as a regular expression: the definition the gate before the walk implements."""


@pytest.mark.parametrize(
    "raw",
    [b"1" * 308, b"1" * 309, b"x" + b"9" * 400, b"e12", b"E-100", b"1e+1000", b"e+-100", b"E 100", b"Na N", b"Infinit"],
)
def test_the_gate_before_the_walk_is_its_definition(raw: bytes) -> None:
    assert _maybe_non_finite(raw) is (NON_FINITE_HINT.search(raw) is not None)


PIECES = [b"0", b"7", b"e", b"E", b"+", b"-", b".", b"N", b"a", b"I", b"nfinity", b" "]


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.lists(st.sampled_from(PIECES)).map(b"".join))
def test_the_gate_before_the_walk_agrees_with_its_definition_anywhere(raw: bytes) -> None:
    assert _maybe_non_finite(raw) is (NON_FINITE_HINT.search(raw) is not None)


def test_the_top_level_must_be_an_object() -> None:
    with pytest.raises(InvalidRequest, match="must be a JSON object, not an array"):
        decode_json_object(b"[1]")


@settings(max_examples=60, deadline=None, database=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_what_json_dumps_writes_decodes_to_itself(value: object) -> None:
    assert decode_json(json.dumps(value).encode()) == value


async def test_a_declared_oversized_body_is_refused_before_reading() -> None:
    body = Body([b"x" * 10], {"content-length": "2048"})
    with pytest.raises(PayloadTooLarge):
        await read_body(body, 1024)
    assert body.read == 0


async def test_an_undeclared_oversized_body_is_refused_while_streaming() -> None:
    body = Body([b"x" * 600] * 100)
    with pytest.raises(PayloadTooLarge) as refused:
        await read_body(body, 1024)
    assert body.read == 2 and refused.value.status == 413


async def test_a_body_within_the_limit_is_read_whole() -> None:
    assert await read_body(Body([b"ab", b"cd"], {"content-length": "4"}), 4) == b"abcd"
