"""A 2026-07-28 answer's bytes are `json.dumps`'s (the SDK's), whichever encoder wrote them."""

from __future__ import annotations

import json
import math
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings, strategies as st

from mcp_hub.fastpath import wire_json
from mcp_hub.fastpath.wire_json import sdk_json
from tests.json_fuzz_support import PLAIN_SCALARS, WEIRD_TEXT

# Floats of every magnitude, the ones pydantic-core writes its own way (1e-9 to 1e-4) among them.
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.builds(lambda m, e: m * 10.0**e, st.floats(min_value=1, max_value=10), st.integers(min_value=-12, max_value=20)),
)
VALUES = st.recursive(
    st.one_of(PLAIN_SCALARS, WEIRD_TEXT, FLOATS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), WEIRD_TEXT), inner, max_size=4)
    ),
    max_leaves=16,
)


def sdk(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@settings(max_examples=1000, deadline=None, database=None)
@given(request_id=st.one_of(st.integers(), st.text(max_size=8)), result=st.dictionaries(st.text(max_size=8), VALUES))
def test_an_answer_is_written_as_the_sdk_writes_it(request_id: int | str, result: dict[str, Any]) -> None:
    body = {"jsonrpc": "2.0", "id": request_id, "result": result}
    assert sdk_json(body) == sdk(body)


@pytest.mark.parametrize(
    "value",
    [1e-5, -3.5e-7, 1e-9, 9.99e-5, "é", "\u2028", "\x7f", "\ud800", 1e16, 1e-10, 0.1, math.inf, math.nan, 2**80],
)
def test_what_the_encoders_write_otherwise_is_written_as_the_sdk_writes_it(value: Any) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "result": {"structuredContent": {"value": [value]}}}
    assert sdk_json(body) == sdk(body)


def test_a_plain_answer_is_written_by_pydantic_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common answer (ASCII text, no small floats) takes the faster encoder, and `json` is not asked."""

    def refuse(body: Any) -> str:
        raise AssertionError("json was asked")

    monkeypatch.setattr(wire_json, "_encode", refuse)
    body = {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"text": "ok", "type": "text"}], "isError": False}}
    assert sdk_json(body) == pydantic_core.to_json(body) == sdk(body)
    with pytest.raises(AssertionError):
        sdk_json({**body, "result": {"text": "é"}})
