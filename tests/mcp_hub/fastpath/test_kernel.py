"""`HubRunner._on_request`: a `tools/call` or `tools/list` gets what the SDK's kernel gives it (the handler's params,
`ctx.meta` before and after the middleware, the result, or the JSON-RPC error), in both eras, with its params
validated once; malformed params are refused exactly as the SDK refuses them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from mcp.server import Server
from mcp.server.connection import _NO_CHANNEL, Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.runner import ServerRunner
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    Implementation,
    InitializeRequestParams,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    methods,
)
from pydantic import ValidationError

from mcp_hub.fastpath import kernel
from mcp_hub.fastpath.exchange import Exchange
from mcp_hub.fastpath.kernel import HubRunner
from mcp_hub.shapes import AcceptedShapes, shape_text
from tests.json_fuzz_support import plain_values

pytestmark = pytest.mark.anyio

MODERN, LEGACY = "2026-07-28", "2025-11-25"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


class Probe:
    """A server recording what its middleware and handlers were given."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.server: Server[Any] = Server("probe", version="1.0", on_call_tool=self.call, on_list_tools=self.list)
        self.server.middleware.append(self.middleware)

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        self.seen.append(("middleware", ctx.method, ctx.meta))
        return await call_next(ctx)

    async def call(self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams) -> CallToolResult:
        self.seen.append(("call", params.model_dump(by_alias=True), ctx.meta))
        return CallToolResult(content=[TextContent(type="text", text=repr(params.arguments))])

    async def list(self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams) -> ListToolsResult:
        self.seen.append(("list", params.model_dump(by_alias=True), ctx.meta))
        return ListToolsResult(tools=[], next_cursor=params.cursor)


def connection(version: str, *, initialized: bool = True) -> Connection:
    if version == MODERN:
        return Connection.from_envelope(version, META["io.modelcontextprotocol/clientInfo"], {})
    client = InitializeRequestParams(
        protocol_version=version, capabilities={}, client_info=Implementation(name="t", version="1")
    )
    return Connection(_NO_CHANNEL, protocol_version=version, client_params=client if initialized else None)


async def no_send(message: Any) -> None:
    raise AssertionError(f"nothing is written here: {message}")


def dispatch() -> Exchange:
    return Exchange(headers=None, request_id=1, message_metadata=None, send=no_send)  # type: ignore[arg-type]


async def outcome(
    runner_type: type[ServerRunner[Any]], version: str, method: str, params: Any, *, initialized: bool = True
) -> tuple[Any, list[Any]]:
    """What a runner answers (its result, or the wire error), and what the middleware and handler saw."""
    probe = Probe()
    runner = runner_type(probe.server, connection(version, initialized=initialized), None)
    try:
        answer: Any = await runner._on_request(dispatch(), method, params)
    except (MCPError, ValidationError) as exc:
        error = handler_exception_to_error_data(exc)
        assert error is not None
        answer = error.model_dump()
    except ValueError as exc:
        answer = ("ValueError", str(exc))
    return answer, probe.seen


async def same(version: str, method: str, params: Any, *, initialized: bool = True) -> tuple[Any, list[Any]]:
    sdk = await outcome(ServerRunner, version, method, params, initialized=initialized)
    hub = await outcome(HubRunner, version, method, params, initialized=initialized)
    assert hub == sdk
    return hub


@pytest.mark.parametrize("version", [MODERN, LEGACY, "2025-03-26"])
async def test_a_call_and_a_listing_get_what_the_sdk_gives(version: str) -> None:
    meta = {**META, "progressToken": "p"} if version == MODERN else {"progressToken": 7}
    answer, seen = await same(version, "tools/call", {"name": "add", "arguments": {"a": 1}, "_meta": meta})
    assert answer["content"][0]["text"] == "{'a': 1}"
    typed = {("progress_token" if key == "progressToken" else key): value for key, value in meta.items()}
    assert seen[0] == ("middleware", "tools/call", typed) and seen[1][2] == typed
    answer, seen = await same(version, "tools/list", {"cursor": "c", "_meta": meta})
    assert answer["nextCursor"] == "c" and seen[1][2] == typed


async def test_legacy_calls_without_meta_or_params_are_the_same() -> None:
    _, seen = await same(LEGACY, "tools/call", {"name": "add"})
    assert seen == [("middleware", "tools/call", None), ("call", seen[1][1], None)]
    _, seen = await same(LEGACY, "tools/list", None)
    assert seen[1][0] == "list"


MALFORMED = [
    # Refused by the params model (and the surface): no name, arguments not an object, a bad progress token.
    (MODERN, "tools/call", {"arguments": {}, "_meta": META}),
    (MODERN, "tools/call", {"name": "add", "arguments": [1, 2], "_meta": META}),
    (LEGACY, "tools/call", {"name": 3}),
    (LEGACY, "tools/call", {"name": "add", "_meta": {"progressToken": None}}),
    (LEGACY, "tools/list", {"cursor": 5}),
    # Accepted by the params model, refused by the version's surface only: skipping that check lets them through.
    (MODERN, "tools/call", {"name": "add", "arguments": {}}),
    (MODERN, "tools/call", {"name": "add", "_meta": {}}),
    (MODERN, "tools/call", {"name": "add", "_meta": {**META, "io.modelcontextprotocol/logLevel": "loud"}}),
    (MODERN, "tools/call", {"name": "add", "_meta": {**META, "io.modelcontextprotocol/clientCapabilities": 1}}),
    (MODERN, "tools/list", {"_meta": {**META, "io.modelcontextprotocol/protocolVersion": 2026}}),
    (LEGACY, "tools/call", {"name": "add", "task": {"ttl": "soon"}}),
]


@pytest.mark.parametrize(("version", "method", "params"), MALFORMED)
async def test_malformed_params_get_the_sdks_invalid_params_error_and_reach_no_handler(
    version: str, method: str, params: dict[str, Any]
) -> None:
    for _ in range(2):  # the second time after the shape memory saw the first
        answer, seen = await same(version, method, params)
        assert answer == {"code": INVALID_PARAMS, "message": "Invalid request parameters", "data": ""}
        assert [entry[0] for entry in seen] == ["middleware"]


async def test_a_refused_shape_is_refused_after_an_accepted_one() -> None:
    """The surface memory keys on everything but the free values: a bool progress token is not a string's shape."""
    await same(MODERN, "tools/call", {"name": "add", "_meta": {**META, "progressToken": "a"}})
    answer, _ = await same(MODERN, "tools/call", {"name": "add", "_meta": {**META, "progressToken": {"x": 1}}})
    assert answer["code"] == INVALID_PARAMS


async def test_an_uninitialized_legacy_session_gets_the_sdks_error() -> None:
    answer, seen = await same(LEGACY, "tools/call", {"name": "add"}, initialized=False)
    assert answer["code"] == INVALID_PARAMS and [entry[0] for entry in seen] == ["middleware"]


async def test_other_methods_are_the_sdks() -> None:
    answer, _ = await same(MODERN, "prompts/list", {"_meta": META})
    assert answer["code"] != INVALID_PARAMS  # no handler: method not found, as the SDK says


async def test_a_rewritten_params_is_validated_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """A middleware passing on new params (as request-state unsealing does) gets them checked, not the old ones."""
    probe = Probe()

    async def rewrite(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        return await call_next(ctx.__class__(**{**vars(ctx), "params": {**(ctx.params or {}), "arguments": 5}}))

    probe.server.middleware.insert(0, rewrite)
    runner = HubRunner(probe.server, connection(MODERN), None)
    with pytest.raises(ValidationError):
        await runner._on_request(dispatch(), "tools/call", {"name": "add", "arguments": {}, "_meta": META})
    assert [entry[0] for entry in probe.seen] == ["middleware"]


async def test_a_call_validates_its_params_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once its shape is known, a call costs one validation: no `_extract_meta`, no surface check."""
    checked: list[str] = []
    surface = methods.validate_client_request

    def counted(method: str, version: str, params: Mapping[str, Any] | None) -> None:
        checked.append(method)
        surface(method, version, params)

    monkeypatch.setattr(methods, "validate_client_request", counted)
    monkeypatch.setattr(kernel, "_accepted", AcceptedShapes(kernel.KEPT))
    monkeypatch.setattr("mcp.server.runner._extract_meta", lambda params: pytest.fail("_extract_meta ran"))
    runner = HubRunner(Probe().server, connection(MODERN), None)
    for token in ("a", "b", 3):
        params = {"name": f"tool{token}", "arguments": {"n": token}, "_meta": {**META, "progressToken": token}}
        await runner._on_request(dispatch(), "tools/call", params)
    assert checked == ["tools/call", "tools/call"]  # a string token's shape, then an integer's


def test_the_shape_memory_starts_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "_accepted", AcceptedShapes(2))
    for text in ("a", "b", "c"):
        assert kernel.surface_accepted("tools/call", MODERN, {"name": "n", "_meta": {**META, "x-extra": text}})
    assert len(kernel._accepted) == 1


names = st.one_of(st.text(max_size=5), st.integers(), st.none())
arguments = st.one_of(st.none(), st.dictionaries(st.text(max_size=4), plain_values(), max_size=3), plain_values())
metas = st.one_of(
    st.just(META),
    st.builds(lambda token: {**META, "progressToken": token}, plain_values()),
    st.dictionaries(st.sampled_from(sorted(META) + ["progressToken", "x"]), plain_values(), max_size=3),
    plain_values(),
)


@st.composite
def params_of(draw: st.DrawFn) -> dict[str, Any]:
    fields = {"name": names, "arguments": arguments, "_meta": metas, "cursor": names, "task": plain_values()}
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    return {field: draw(fields[field]) for field in chosen}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    version=st.sampled_from([MODERN, LEGACY]),
    method=st.sampled_from(["tools/call", "tools/list"]),
    params=st.one_of(st.none(), params_of()),
)
async def test_any_params_get_what_the_sdk_gives(version: str, method: str, params: dict[str, Any] | None) -> None:
    await same(version, method, params)


def test_params_nested_deeper_than_repr_goes_have_no_shape_and_are_checked_in_full() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = {"d": deep}
    params = {"name": "n", "_meta": {**META, "deep": deep}}
    assert kernel._shape("tools/call", params) is None
    assert not kernel.surface_accepted("tools/call", MODERN, params)


def test_params_of_free_values_only_share_a_shape_by_their_keys_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "_free_shapes", {})
    first = kernel._shape("tools/call", {"name": "a", "arguments": {"x": 1}})
    assert first == shape_text({"name": "", "arguments": {}})
    assert kernel._shape("tools/call", {"name": "b", "arguments": {"y": [2.5]}}) == first  # remembered
    assert kernel._shape("tools/call", {"arguments": {}, "name": "b"}) == shape_text({"arguments": {}, "name": ""})
    assert kernel._shape("tools/call", {"name": 5, "arguments": {}}) == shape_text({"name": 5, "arguments": {}})
    assert kernel._shape("tools/list", {"name": "a"}) == shape_text({"name": "a"})  # not a free value there
    assert kernel._shape("tools/list", {"cursor": "c"}) == shape_text({"cursor": ""})


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["tools/call", "tools/list"]), params=params_of())
def test_a_remembered_shape_is_the_one_made(
    monkeypatch: pytest.MonkeyPatch, method: str, params: dict[str, Any]
) -> None:
    monkeypatch.setattr(kernel, "_free_shapes", {})
    made = kernel._shape(method, params)
    assert kernel._shape(method, dict(params)) == made
