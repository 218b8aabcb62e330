"""The shared body reader and decoder every JSON edge uses."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from toolpolicy.errors import InvalidRequest, PayloadTooLarge
from toolpolicy.jsonbody import (
    MAX_DEPTH,
    _maybe_non_finite,
    decode_json,
    decode_json_object,
    read_body,
    receive_body,
)

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


class Disconnected(Exception):
    """The web framework's exception for a client gone (Starlette's `ClientDisconnect` at the LLM routes)."""


def messages_of(*messages: dict[str, Any]) -> tuple[Callable[[], Awaitable[dict[str, Any]]], list[dict[str, Any]]]:
    """An ASGI `receive` answering `messages` in order, and the list of those it has not answered yet."""
    left = list(messages)

    async def receive() -> dict[str, Any]:
        return left.pop(0)

    return receive, left


def part(body: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_received_body_in_parts_is_read_whole_and_nothing_past_its_last_message() -> None:
    after = {"type": "http.disconnect"}
    receive, left = messages_of(part(b'{"a": ', True), part(b"", True), part(b"[1, 2]}"), after)
    assert await receive_body(receive, {}, 100, disconnected=Disconnected) == b'{"a": [1, 2]}'
    assert left == [after]


async def test_a_received_body_declared_over_the_limit_is_refused_before_reading() -> None:
    receive, left = messages_of(part(b"{}"))
    with pytest.raises(PayloadTooLarge, match="is 101 bytes; the limit is 100"):
        await receive_body(receive, {"content-length": "101"}, 100, disconnected=Disconnected)
    assert len(left) == 1


async def test_a_received_body_growing_over_the_limit_is_refused_as_it_comes() -> None:
    receive, left = messages_of(part(b"{" + b" " * 60, True), part(b" " * 60, True), part(b"}"))
    with pytest.raises(PayloadTooLarge, match="over the limit of 100 bytes"):
        await receive_body(receive, {}, 100, disconnected=Disconnected)
    assert len(left) == 1  # the last part was never asked for


async def test_a_client_leaving_before_the_end_of_its_body_raises_the_frameworks_exception() -> None:
    receive, _ = messages_of(part(b"{", True), {"type": "http.disconnect"})
    with pytest.raises(Disconnected):
        await receive_body(receive, {}, 100, disconnected=Disconnected)


async def test_a_received_body_of_no_bytes_is_empty() -> None:
    receive, _ = messages_of(part(b""))
    assert await receive_body(receive, {}, 100, disconnected=Disconnected) == b""
