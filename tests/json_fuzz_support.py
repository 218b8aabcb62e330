"""Hypothesis strategies for hostile JSON request bodies, shared by the edge fuzz suites.

Bodies are rendered by hand, not by `json.dumps`, so they can carry what a JSON library would never write but a
client can send: `NaN`, `Infinity`, `1e309`, integers past Python's 4300-digit limit, lone `\\ud800` escapes,
invalid UTF-8, nesting far past any limit. Most examples are shaped like the route's real requests (so they get
past the first checks and reach deeper code); the rest are anything at all.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings, strategies as st

FUZZ = settings(
    max_examples=int(os.environ.get("EDGE_FUZZ_EXAMPLES", "40")),
    deadline=None,
    database=None,
    derandomize=os.environ.get("CI", "").lower() == "true",  # CI runs the same examples every time
    # One gateway serves every example of a test on purpose: it must keep serving after each one.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Raw(bytes):
    """A token written into the body as is."""


HOSTILE_TOKENS = [
    Raw(b"NaN"),
    Raw(b"Infinity"),
    Raw(b"-Infinity"),
    Raw(b"1e309"),
    Raw(b"-1e400"),
    Raw(b"1" * 4301),
    Raw(b"9" * 20),
    Raw(b"-" + b"9" * 40),
    Raw(b'"\\ud800"'),
    Raw(b'"\\udfff tail"'),
    Raw(b'"\xff\xfe"'),
    Raw(b'"a\\u0000b"'),
    Raw(b"[" * 300 + b"]" * 300),
    Raw(b'{"a":' * 250 + b"1" + b"}" * 250),
]
WHOLE_BODIES = [
    b"",
    b"   ",
    b"null",
    b"[]",
    b'"text"',
    b"42",
    b"[" * 20_000,
    b'{"a":' + b"1" * 5000 + b"}",
    b"\xef\xbb\xbf{}",
    b"{\xff}",
    b'{"a":1}{"b":2}',
]
WEIRD_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\r\nx-evil: 1", "\ud800", "\udfff", "\u202e", "é", "\x7f"]),
    st.integers(min_value=300, max_value=5000).map(lambda n: "m" * n),
)
PLAIN_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
HOSTILE_SCALARS = st.one_of(PLAIN_SCALARS, WEIRD_TEXT, st.sampled_from(HOSTILE_TOKENS))


def _trees(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
        max_leaves=12,
    )


def plain_values() -> st.SearchStrategy[Any]:
    """Any JSON value a JSON library would write: wrong types, not broken JSON."""
    return _trees(PLAIN_SCALARS, st.text(max_size=8))


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON-ish value, hostile tokens and hostile keys included."""
    return _trees(HOSTILE_SCALARS, st.one_of(WEIRD_TEXT, st.text(max_size=8)))


def render(value: Any) -> bytes:
    """JSON text for `value`, with `Raw` tokens written as they are."""
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, dict):
        items = (render(str(key)) + b":" + render(item) for key, item in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(render(item) for item in value) + b"]"
    # ensure_ascii writes a lone surrogate as its \ud800 escape, as a hostile client would
    return json.dumps(value, ensure_ascii=True).encode()


def bodies(shaped: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Route-shaped objects most of the time, else any JSON-ish value, a whole hostile body or random bytes."""
    as_sent = shaped.map(render)
    return st.one_of(
        as_sent,
        as_sent,
        as_sent,
        as_sent,
        json_values().map(render),
        st.sampled_from(WHOLE_BODIES),
        st.binary(max_size=64),
    )


def shaped(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """An object with the route's fields, one of them (or none) swapped for any JSON value, plus a few arbitrary
    fields: mostly plausible, so each example gets past the first checks and probes one thing deeper down."""

    def build(known: dict[str, Any], victim: str | None, swapped: Any, more: dict[str, Any]) -> dict[str, Any]:
        body = {**more, **known}
        if victim is not None:
            body[victim] = swapped
        return body

    return st.builds(
        build,
        st.fixed_dictionaries(required, optional=optional or {}),
        st.one_of(st.none(), st.none(), st.sampled_from(sorted({*required, *(optional or {})}))),
        json_values(),
        st.dictionaries(st.text(max_size=8), plain_values(), max_size=2),
    )
