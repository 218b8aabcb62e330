"""`HubRunner`: the SDK's kernel (`ServerRunner`), validating a `tools/call` or `tools/list` request's params once.

For every request the SDK's kernel validates the params three times: `_extract_meta` (the `_meta` envelope, as
`RequestParams`, before the middleware), the version's surface model (`validate_client_request`, after it), and the
handler's params model (`entry.params_type`). For the two methods the fast paths serve, `HubRunner` does what
`ServerRunner._on_request` does, in its order, with the same errors, and validates less:

- The handler's params model runs first, before the middleware, and gives `ctx.meta` too: its `_meta` field is
  `RequestParams`' own, so where the model accepts the params, `_extract_meta` would have given the same mapping (a
  copy is handed on, as the SDK's two validations give two). Where the model refuses them, the request is the
  SDK's, start to finish (`ServerRunner._on_request`), so its errors stay the SDK's own.
- The surface check still decides, inside the middleware, as in the SDK; its verdict depends on the params' shape
  only, apart from the values of `name` and `arguments` (`cursor` for `tools/list`) and `_meta.progressToken`, whose
  surface types (`str`, `dict[str, Any]`, `str | int`) take every value of their exact type. A shape once accepted
  for a version is remembered (`surface_accepted`): a client sends the same envelope every time. What the surface
  refuses is checked in full each time, and raises the SDK's error.
- Params a middleware rewrote (`requestState` unsealed) are validated in full, as the SDK validates them.

Every other method is the SDK's (`super()._on_request`). Results are shaped as `plain_results.py` says. The server
middleware runs as `hub_chain.py` says: straight through the hub's own links where each would only pass the request
on, else composed the SDK's way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.runner import _INIT_EXEMPT, _dump_result
from mcp.shared.dispatcher import DispatchContext
from mcp.shared.exceptions import MCPError
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallToolRequestParams,
    ErrorData,
    PaginatedRequestParams,
    RequestParams,
    RequestParamsMeta,
    methods,
)
from pydantic import ValidationError

from mcp_hub.fastpath.hub_chain import hub_chain, run_straight
from mcp_hub.fastpath.plain_results import PlainResultsRunner
from mcp_hub.shapes import AcceptedShapes, Shape, shape_text, string_keys

KERNEL_PARAMS: Final[Mapping[str, type[RequestParams]]] = {
    "tools/call": CallToolRequestParams,
    "tools/list": PaginatedRequestParams,
}
"""The methods validated once, with the params model their handler must have (else the SDK's way)."""
_FREE: Final[Mapping[str, Mapping[str, type]]] = {
    "tools/call": {"name": str, "arguments": dict},
    "tools/list": {"cursor": str},
}
"""Per method, the params whose every value of the exact type the surface takes: left out of the shape."""
_TOKEN_BLANKS: Final[Mapping[type, Any]] = {str: "", int: 0}
"""`_meta.progressToken` of these exact types (a bool is not one) is accepted whatever its value."""
KEPT: Final = 1024
"""Accepted shapes remembered; beyond that the memory starts over."""

_accepted = AcceptedShapes(KEPT)
"""(method, version, params shape) the version's surface accepted."""
_free_shapes: dict[tuple[str, ...], Shape | None] = {}
"""The shape of params whose every value is free, by method and keys (in order)."""


class HubRunner(PlainResultsRunner):
    """The SDK's kernel with `tools/call` and `tools/list` params validated once (see the module doc)."""

    async def _on_request(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        model = KERNEL_PARAMS.get(method)
        entry = self.server.get_request_handler(method) if model is not None else None
        if entry is None or entry.params_type is not model:
            return await super()._on_request(dctx, method, params)
        try:
            # `model.model_validate`, less its Python wrapper's keyword plumbing (about a microsecond a call).
            validate = model.__pydantic_validator__.validate_python
            typed = cast(RequestParams, validate({} if params is None else params, by_name=False))
        except ValidationError:
            return await super()._on_request(dctx, method, params)  # refused: the SDK's way, and its errors
        meta: RequestParamsMeta | None = None
        if params and "_meta" in params and typed.meta is not None:  # what `_extract_meta` gives
            meta = cast(RequestParamsMeta, dict(typed.meta))
        version = self.connection.protocol_version
        ctx = self._make_context(dctx, method, params, meta, version)

        async def inner(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
            # `ServerRunner._on_request`'s `_inner`, in its order, reusing the params model made above if the
            # middleware passed the params on as they came.
            called, checked = ctx.method, ctx.params
            as_came = called == method and checked is params
            if called in methods.SPEC_CLIENT_METHODS and not (as_came and surface_accepted(called, version, checked)):
                try:
                    methods.validate_client_request(called, version, checked)
                except KeyError:
                    raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data=called) from None
            if called == "initialize":
                return self._serialize(called, version, self._handle_initialize(checked))
            handler = self.server.get_request_handler(called)
            if handler is None:
                raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data=called)
            if not self.connection.initialize_accepted and called not in _INIT_EXEMPT:
                raise MCPError(code=INVALID_PARAMS, message="Invalid request parameters", data="")
            handed: Any
            if as_came and handler.params_type is model:
                handed = typed
            else:
                handed = handler.params_type.model_validate({} if checked is None else checked, by_name=False)
            result = await handler.handler(ctx, handed)
            if isinstance(result, ErrorData):
                raise MCPError.from_error_data(result)
            return self._serialize(called, version, result)

        chain = hub_chain(self.server.middleware)
        if chain is not None and chain.passes_on(ctx):
            return _dump_result(await run_straight(chain, ctx, inner))  # the chain's links, not composed
        return _dump_result(await self._compose_server_middleware(inner)(ctx))


def surface_accepted(method: str, version: str, params: Mapping[str, Any] | None) -> bool:
    """Whether `validate_client_request(method, version, params)` passes, remembered by the params' shape.

    The first time a shape is seen it is validated in full; a refusal is not remembered (it raises each time).
    """
    shape = _shape(method, params)
    if shape is None:
        return False
    key = (method, version, shape)
    if key in _accepted:
        return True
    try:
        methods.validate_client_request(method, version, params)
    except (KeyError, ValueError, ValidationError):
        return False
    _accepted.add(key)
    return True


def _shape(method: str, params: Mapping[str, Any] | None) -> Shape | None:
    """The params with the free values (see the module doc) blanked, as text; None if they cannot be told apart.

    The params come from a decoded JSON body (`shape_text`). Params whose every value is free (a 2025-era call
    without `_meta`) blank to the same text whatever their values: it is remembered by method and keys, in order.
    """
    if params is None:
        return "None"
    if type(params) is not dict:
        return None
    free = _FREE[method]
    shape: dict[str, Any] = {}
    all_free = True
    value: Any
    for key, value in params.items():
        kind = free.get(key)
        if kind is not None and type(value) is kind:
            if isinstance(value, dict) and not string_keys(value):
                return None
            value = kind()
        else:
            all_free = False
            if key == "_meta" and type(value) is dict:
                blank = _TOKEN_BLANKS.get(type(value.get("progressToken")))
                if blank is not None:
                    value = {**value, "progressToken": blank}
        shape[key] = value
    if not all_free:
        return shape_text(shape)
    # Every value blanked (a session's call without `_meta`): the text depends on the keys, in order, alone.
    keys = (method, *shape)
    text = _free_shapes.get(keys)
    if text is None:
        if len(_free_shapes) >= KEPT:
            _free_shapes.clear()
        text = _free_shapes[keys] = shape_text(shape)
    return text
