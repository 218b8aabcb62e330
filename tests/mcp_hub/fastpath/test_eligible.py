"""`eligible._param_headers_refused` refuses exactly what the SDK's `validate_mcp_param_headers` refuses, with the
walk of a schema that declares no `x-mcp-header` skipped (and its verdict remembered per schema object); the
envelope and the routing headers are read as the SDK reads them; the ladder's verdicts it remembers are the ladder's."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from mcp.server import Server
from mcp.shared.inbound import (
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY, JSONRPCRequest
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


V, C, INFO = PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3))
envelope_values = st.one_of(json_leaves, st.dictionaries(st.text(max_size=3), json_leaves, max_size=2))
versions = st.one_of(st.just("2026-07-28"), st.sampled_from(["2025-11-25", "2026-07-29"]), envelope_values)
names = st.one_of(st.sampled_from(["fx__echo", "fx__add", "a b"]), envelope_values)
other_header = st.sampled_from(["2026-07-28", "tools/call", "fx__echo", "=?base64?ZnhfX2VjaG8=?="])


@st.composite
def ladder_inputs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    """A fast-path request (method and object params) whose envelope and routing headers vary as a client might:
    each header the body's own value (as the ladder wants it), another, or none."""
    optional = {INFO: envelope_values, "x": json_leaves}
    sound = draw(st.booleans())  # half of them built to pass the ladder; the others anything at all
    meta = draw(
        st.fixed_dictionaries({V: st.just("2026-07-28"), C: envelope_values}, optional=optional)
        if sound
        else st.one_of(
            st.fixed_dictionaries({V: versions, C: envelope_values}, optional=optional),
            st.fixed_dictionaries({}, optional={V: versions, C: envelope_values, **optional}),
            envelope_values,
        )
    )
    params: dict[str, Any] = draw(st.fixed_dictionaries({}, optional={"name": names, "_meta": st.just(meta)}))
    if sound:
        params["_meta"] = meta
    method = draw(st.sampled_from(["tools/call", "tools/list"]))
    own = {
        "mcp-protocol-version": meta.get(V) if isinstance(meta, dict) else None,
        "mcp-method": method,
        "mcp-name": params.get("name"),
    }
    headers: dict[str, str] = {}
    for header, value in own.items():
        if sound and isinstance(value, str):
            headers[header] = value
            continue
        mostly_own = st.one_of(st.just(value), other_header, st.none())
        chosen = draw(mostly_own if isinstance(value, str) else other_header)
        if chosen is not None and (isinstance(value, str) or draw(st.booleans())):
            headers[header] = chosen
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers


@settings(max_examples=500, deadline=None)
@given(st.lists(ladder_inputs(), min_size=1, max_size=4))
def test_the_ladder_verdict_remembered_is_the_ladders_own(requests: list[tuple[dict[str, Any], Any]]) -> None:
    """`ladder_passes` says what the SDK's ladder says, for a request first seen and for one seen again with other
    client info and capabilities (what is remembered ignores them, as the ladder does)."""
    eligible._ladder_passed.clear()
    for decoded, headers in requests:
        for _ in range(2):
            expected = isinstance(classify_inbound_request(decoded, headers=headers), InboundModernRoute)
            assert eligible.ladder_passes(decoded, decoded["method"], decoded["params"], headers) is expected
            meta = decoded["params"].get("_meta")
            if isinstance(meta, dict) and C in meta:  # the same combination, other values the ladder only looks up
                meta[C], meta[INFO] = {"other": True}, None


def test_a_route_holds_what_the_ladders_route_holds() -> None:
    meta = {V: "2026-07-28", C: {"sampling": {}}, INFO: {"name": "c", "version": "1"}}
    decoded = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": meta}}
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list"}
    verdict = classify_inbound_request(decoded, headers=headers)
    assert isinstance(verdict, InboundModernRoute)
    for _ in range(2):  # first from the ladder, then remembered
        assert eligible.ladder_passes(decoded, "tools/list", decoded["params"], headers)
        route = eligible.Route(7, "tools/list", decoded["params"], meta[V], meta.get(INFO), meta[C])
        held = (route.protocol_version, route.client_info, route.client_capabilities)
        assert held == (verdict.protocol_version, verdict.client_info, verdict.client_capabilities)


def test_the_ladders_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eligible, "LADDER_KEPT", 3)
    eligible._ladder_passed.clear()
    for n in range(8):
        meta = {V: "2026-07-28", C: {}}
        decoded = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": f"t{n}", "_meta": meta}}
        headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": f"t{n}"}
        assert eligible.ladder_passes(decoded, "tools/call", decoded["params"], headers)
        assert len(eligible._ladder_passed) <= 3


def _sound_call() -> tuple[dict[str, Any], dict[str, str]]:
    meta = {V: "2026-07-28", C: {}, INFO: {"name": "c", "version": "1"}}
    decoded = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx__echo", "_meta": meta}}
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "fx__echo"}
    return decoded, headers


CHANGES: dict[str, Any] = {
    "version header": lambda d, h: h.update({"mcp-protocol-version": "2025-11-25"}),
    "no version header": lambda d, h: h.pop("mcp-protocol-version"),
    "method header": lambda d, h: h.update({"mcp-method": "tools/list"}),
    "no method header": lambda d, h: h.pop("mcp-method"),
    "name header": lambda d, h: h.update({"mcp-name": "fx__add"}),
    "encoded name header": lambda d, h: h.update({"mcp-name": "=?base64?ZnhfX2VjaG8=?="}),
    "no name header": lambda d, h: h.pop("mcp-name"),
    "name": lambda d, h: d["params"].update(name="fx__add"),
    "no name": lambda d, h: d["params"].pop("name"),
    "version": lambda d, h: d["params"]["_meta"].update({V: "2026-07-29"}),
    "method": lambda d, h: d.update(method="tools/list"),
    "no capabilities": lambda d, h: d["params"]["_meta"].pop(C),
    "capabilities": lambda d, h: d["params"]["_meta"].update({C: {"sampling": {}}}),
    "no info": lambda d, h: d["params"]["_meta"].pop(INFO),
}


@pytest.mark.parametrize(
    "changes",
    [*([name] for name in CHANGES), *(list(pair) for pair in itertools.combinations(CHANGES, 2))],
    ids=lambda changes: " + ".join(changes),
)
def test_a_request_differing_from_one_let_through_gets_the_ladders_own_verdict(changes: list[str]) -> None:
    eligible._ladder_passed.clear()
    decoded, headers = _sound_call()
    assert eligible.ladder_passes(decoded, "tools/call", decoded["params"], headers)
    for change in changes:
        CHANGES[change](decoded, headers)
    expected = isinstance(classify_inbound_request(decoded, headers=headers), InboundModernRoute)
    assert eligible.ladder_passes(decoded, decoded["method"], decoded["params"], headers) is expected
