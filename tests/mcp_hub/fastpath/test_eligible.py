"""`eligible._param_headers_refused` refuses exactly what the SDK's `validate_mcp_param_headers` refuses, with the
walk of a schema that declares no `x-mcp-header` skipped (and its verdict remembered per schema object); the
envelope and the routing headers are read as the SDK reads them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings, strategies as st
from mcp.server import Server
from mcp.shared.inbound import find_duplicated_routing_header, validate_mcp_param_headers
from mcp_types import JSONRPCRequest
from pydantic import ValidationError
from starlette.datastructures import Headers

from mcp_hub.fastpath import eligible
from mcp_hub.request_headers import ROUTING, RequestHeaders

REGION = {
    "type": "object",
    "properties": {"region": {"type": "string", "x-mcp-header": "Region"}, "n": {"type": "integer"}},
}
PLAIN = {"type": "object", "properties": {"region": {"type": "string"}, "n": {"type": "integer"}}}
# Two annotations naming one header: the SDK validates nothing against such a schema.
INVALID = {
    "type": "object",
    "properties": {
        "a": {"type": "string", "x-mcp-header": "Same"},
        "b": {"type": "string", "x-mcp-header": "same"},
    },
}
SCHEMAS: dict[str, Any] = {"region": REGION, "plain": PLAIN, "invalid": INVALID}


def server(schemas: Mapping[str, Any]) -> Server[Any]:
    return Server("t", get_tool_input_schema=lambda name: schemas.get(name))


def refused(name: str, arguments: Any, headers: dict[str, str]) -> bool:
    params = {"name": name, "arguments": arguments}
    return eligible._param_headers_refused(server(SCHEMAS), params, headers)


def test_a_plain_schema_refuses_nothing_and_is_walked_once() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    assert not eligible._param_headers_refused(
        server({"t": schema}), {"name": "t", "arguments": {"q": "x"}}, {"mcp-param-q": "y"}
    )
    assert eligible._annotated_schemas[id(schema)] == (schema, False)


def test_a_declared_header_is_still_checked() -> None:
    assert refused("region", {"region": "us-east-1"}, {"mcp-param-region": "eu-west-1"})
    assert refused("region", {"region": "us-east-1"}, {})
    assert not refused("region", {"region": "us-east-1"}, {"mcp-param-region": "us-east-1"})
    assert eligible._annotated_schemas[id(REGION)] == (REGION, True)


def test_the_memory_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(eligible, "_ANNOTATED_LIMIT", 2)
    monkeypatch.setattr(eligible, "_annotated_schemas", {})
    kept = [{"type": "object", "properties": {str(i): {"type": "string"}}} for i in range(5)]
    for schema in kept:
        assert eligible._annotated(schema) is False
        assert len(eligible._annotated_schemas) <= 2


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=4), st.lists(st.integers(), max_size=2)
)


@given(
    name=st.sampled_from(sorted(SCHEMAS)),
    arguments=st.dictionaries(st.sampled_from(["region", "n", "a", "b", "x"]), _values, max_size=4),
    headers=st.dictionaries(
        st.sampled_from(["mcp-param-region", "mcp-param-same", "mcp-param-n", "mcp-param-x", "accept"]),
        st.text(alphabet="abcus-1", max_size=6),
        max_size=3,
    ),
)
def test_refuses_what_the_sdk_refuses(name: str, arguments: dict[str, Any], headers: dict[str, str]) -> None:
    expected = validate_mcp_param_headers(SCHEMAS[name], arguments, headers) is not None
    assert refused(name, arguments, headers) is expected


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=3))
_envelopes = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0]) | _scalars,
        "id": _scalars | st.lists(st.integers(), max_size=1),
        "method": st.sampled_from(["tools/call", "tools/list", "prompts/list", ""]) | _scalars,
        "params": st.dictionaries(st.text(max_size=3), _scalars, max_size=2) | _scalars,
        "result": st.just({}),
        "error": st.just({"code": 1, "message": "m"}),
    },
)


@settings(max_examples=500)
@given(decoded=_envelopes | _scalars | st.lists(_envelopes, max_size=2))
def test_the_envelope_is_taken_exactly_when_the_sdk_reads_a_fast_request(decoded: Any) -> None:
    """Taken: the SDK's `JSONRPCRequest` reads the same id, method and params; not taken: the SDK answers it."""
    try:
        request: JSONRPCRequest | None = JSONRPCRequest.model_validate(decoded, by_name=False)
    except ValidationError:
        request = None
    fast = (
        request is not None
        and request.method in eligible.FAST_METHODS
        and isinstance(decoded, dict)
        and isinstance(decoded.get("params"), dict)
    )
    found = eligible.envelope(decoded)
    assert (found is not None) is fast
    if found is not None:
        assert request is not None
        assert found == (request.id, request.method, decoded["params"])


header_names = st.sampled_from(["mcp-method", "mcp-name", "mcp-protocol-version", "accept", "x-a", "1"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(header_names, st.text(max_size=4)), max_size=6))
def test_the_routing_headers_read_once_are_what_the_sdk_reads(pairs: list[tuple[str, str]]) -> None:
    """What `accepted` hands the SDK's ladder, and its duplicate verdict, from the one pass over the raw headers
    (names in lower case, as ASGI gives them): what the SDK's own reading of the request's headers gives."""
    raw = [(name.encode("latin-1"), value.encode("utf-8")) for name, value in pairs]
    headers = Headers(raw=raw)
    read_once = RequestHeaders(raw)
    assert read_once.routing_repeated is (find_duplicated_routing_header(headers.items()) is not None)
    folded = dict(headers)
    for name in ROUTING:
        assert read_once.found.get(name) == folded.get(name)
