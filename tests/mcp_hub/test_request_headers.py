"""The headers `/mcp` reads, found in one pass: what starlette's `Headers.get` would give for each."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from starlette.datastructures import Headers

from mcp_hub.request_headers import HEADERS_SCOPE_KEY, NAMES, RequestHeaders, request_headers

raw_names = st.sampled_from(sorted(NAMES) + ["user-agent", "x-other", "Host", "accept-encoding"]).map(
    lambda name: name.encode("latin-1")
)
raw_values = st.binary(max_size=12)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.tuples(raw_names, raw_values), max_size=12))
def test_every_name_read_gets_what_headers_get_gives(raw: list[tuple[bytes, bytes]]) -> None:
    read_once, starlette = RequestHeaders(raw), Headers(raw=raw)
    for name in NAMES:
        assert read_once.get(name) == starlette.get(name)
        assert read_once.get(name.upper(), "absent") == starlette.get(name, "absent")
        assert (name in read_once) == (name in starlette)


def test_a_repeated_header_gives_its_first_value() -> None:
    headers = RequestHeaders([(b"accept", b"text/event-stream"), (b"accept", b"application/json")])
    assert headers["accept"] == "text/event-stream" and len(headers) == 1 and list(headers) == ["accept"]


def test_a_header_not_read_in_the_pass_is_an_error_not_an_absence() -> None:
    headers = RequestHeaders([(b"user-agent", b"curl")])
    with pytest.raises(ValueError):
        headers.get("user-agent")
    with pytest.raises(ValueError):
        assert "last-event-id" in headers


def test_the_scope_keeps_the_headers_read_once() -> None:
    scope = {"type": "http", "headers": [(b"host", b"hub")]}
    assert request_headers(scope).get("host") == "hub"  # read now
    kept = scope[HEADERS_SCOPE_KEY] = RequestHeaders([(b"host", b"kept")])
    assert request_headers(scope) is kept
