"""Which `/mcp` POSTs the fast path takes: decided from the decoded body and the headers, before any work.

Every check the SDK's 2026-07-28 entry (`mcp/server/_streamable_http_modern.py`) makes before dispatch is made here,
in the SDK's order, and whatever any of them would refuse is left to the SDK, so that refusals (and their exact
status, headers and bodies) stay the SDK's own. Nothing here has side effects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server import Server
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PARAM_HEADER_PREFIX,
    MCP_PROTOCOL_VERSION_HEADER,
    InboundModernRoute,
    classify_inbound_request,
    validate_mcp_param_headers,
    x_mcp_header_map,
)
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY, RequestId
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request

from mcp_hub.fastpath.transport_checks import accepts, security_refuses
from mcp_hub.request_headers import request_headers

FAST_METHODS = frozenset({"tools/call", "tools/list"})
"""The methods the fast path serves; every other one goes to the SDK."""

_VERSION_HEADER = MCP_PROTOCOL_VERSION_HEADER.lower().encode("ascii")
_PARAM_PREFIX = MCP_PARAM_HEADER_PREFIX.lower()
_ANNOTATED_LIMIT = 4096
"""Input schemas whose `x-mcp-header` verdict `_annotated` keeps; beyond that it starts over."""
_annotated_schemas: dict[int, tuple[Mapping[str, Any], bool]] = {}
LADDER_KEPT = 1024
"""Combinations the SDK's ladder let through that `ladder_passes` remembers; beyond that it starts over."""
_ladder_passed: set[tuple[str | None, ...]] = set()
_VERSION, _METHOD, _NAME = MCP_PROTOCOL_VERSION_HEADER, MCP_METHOD_HEADER, MCP_NAME_HEADER
"""The routing headers as the ladder reads them (lower-case names, as in the headers read once)."""
_CAPABILITIES = CLIENT_CAPABILITIES_META_KEY


@dataclass(slots=True)
class Route:
    """A request the fast path serves: its id, method and params, and the envelope the SDK's ladder let through (what
    its `InboundModernRoute` holds: the raw values of the params' `_meta`). Not frozen: one is made per request, and
    nothing changes it."""

    request_id: RequestId
    method: str
    params: dict[str, Any]
    protocol_version: str
    client_info: Any
    client_capabilities: Any


def modern_version(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the SDK's manager routes this request to its 2026-07-28 entry (a non-handshake version header)."""
    for name, value in raw_headers:
        if name == _VERSION_HEADER:
            return value.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS
    return False


def envelope(decoded: Any) -> tuple[RequestId, str, dict[str, Any]] | None:
    """Id, method and params of a body that is one JSON-RPC request for a fast method, else None.

    Accepts exactly what `JSONRPCRequest.model_validate` accepts for these (`id` a string or a non-boolean integer),
    and wants `params` to be an object: the ladder refuses a request without `params._meta` anyway.
    """
    if not isinstance(decoded, dict) or decoded.get("jsonrpc") != "2.0":
        return None
    request_id = decoded.get("id")
    method = decoded.get("method")
    params = decoded.get("params")
    if type(request_id) not in (int, str) or method not in FAST_METHODS or not isinstance(params, dict):
        return None
    assert isinstance(request_id, int | str) and isinstance(method, str)
    return request_id, method, params


async def accepted(
    app: Server[Any],
    security: TransportSecurityMiddleware,
    json_response: bool,
    request: Request,
    decoded: Any,
) -> Route | None:
    """The route of a modern request the SDK would dispatch, checked as the SDK checks it; None for anything else."""
    found = envelope(decoded)
    if found is None:
        return None
    read_once = request_headers(request.scope)
    if security_refuses(security, read_once):
        return None
    has_json, has_sse = accepts(read_once)
    if not has_json or (not json_response and not has_sse):
        return None
    # The routing headers, from the one pass over the raw headers (their names in lower case, as ASGI gives them):
    # the SDK's duplicate check over the decoded items, and its ladder reading the routing headers of
    # `dict(request.headers)`, which holds the same first values.
    if read_once.routing_repeated:
        return None
    request_id, method, params = found
    if not ladder_passes(decoded, method, params, read_once.found):
        return None
    if method == "tools/call" and _param_headers_refused(app, params, request.headers):
        return None
    meta = params["_meta"]  # (the ladder's first rung: a mapping with both required keys)
    return Route(
        request_id, method, params, meta[PROTOCOL_VERSION_META_KEY], meta.get(CLIENT_INFO_META_KEY), meta[_CAPABILITIES]
    )


def ladder_passes(decoded: Any, method: str, params: dict[str, Any], headers: Mapping[str, str]) -> bool:
    """Whether `classify_inbound_request(decoded, headers=headers)` routes the request (an `InboundModernRoute`).

    Once `params._meta` is a mapping with both required keys, the ladder's verdict depends on nothing but the
    protocol version's value, the three routing headers, the method and the `name` param (the client info and
    capabilities are looked up, never checked). A combination it let through is remembered, by those values (a
    string version and name only: no other type passes its header comparisons); anything else, every refusal
    included, is put to the ladder each time.
    """
    meta = params.get("_meta")
    key: tuple[str | None, ...] | None = None
    if isinstance(meta, Mapping) and PROTOCOL_VERSION_META_KEY in meta and _CAPABILITIES in meta:
        version, name = meta[PROTOCOL_VERSION_META_KEY], params.get("name")
        if type(version) is str and (name is None or type(name) is str):
            key = (version, headers.get(_VERSION), headers.get(_METHOD), method, headers.get(_NAME), name)
            if key in _ladder_passed:
                return True
    if not isinstance(classify_inbound_request(decoded, headers=headers), InboundModernRoute):
        return False
    if key is not None:
        if len(_ladder_passed) >= LADDER_KEPT:
            _ladder_passed.clear()
        _ladder_passed.add(key)
    return True


def _param_headers_refused(app: Server[Any], params: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    """Whether the SDK would refuse the call's `Mcp-Param-*` headers (SEP-2243) against the tool's input schema.

    The hub's server sets `get_tool_input_schema` (`param_headers.py`), so the schema never comes from a listing.
    """
    lookup = app.get_tool_input_schema
    name = params.get("name")
    arguments = params.get("arguments")
    if lookup is None or not isinstance(name, str) or (arguments is not None and not isinstance(arguments, Mapping)):
        return False
    arguments = arguments or {}
    if not arguments and not any(header.startswith(_PARAM_PREFIX) for header in headers):
        return False
    try:
        schema = lookup(name)
    except Exception:
        return True  # the SDK logs it and skips the check: let it
    if schema is None or not _annotated(schema):
        return False
    return validate_mcp_param_headers(schema, arguments, headers) is not None


def _annotated(schema: Mapping[str, Any]) -> bool:
    """Whether `schema` declares any `x-mcp-header`, remembered per schema object (the catalog's, reused per call).

    A schema declaring none makes `validate_mcp_param_headers` accept whatever the headers and arguments are (it
    checks declared positions only), so the walk of the schema is skipped. The schema is held with its verdict, so
    its `id` cannot be reused by another object while the verdict is kept.
    """
    known = _annotated_schemas.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    if len(_annotated_schemas) >= _ANNOTATED_LIMIT:
        _annotated_schemas.clear()
    declared = bool(x_mcp_header_map(schema))
    _annotated_schemas[id(schema)] = (schema, declared)
    return declared
