"""The connection of a 2026-07-28 request, built from its `_meta` envelope, validated once per distinct envelope.

`Connection.from_envelope` validates the raw client info and capabilities into models, and builds the
`InitializeRequestParams` they make, on every request; a client sends the same ones every time. `connection_for`
builds the same connection from what it kept for the envelope (by its version and the values' text, `shape_text`, which
tells decoded JSON values apart, at a third of `repr`'s cost): a value that does not validate counts as not supplied,
as in `from_envelope`.

Building a `Connection` costs more again: an anyio `Event` (a backend look-up each time), set at once. Per envelope,
one connection is built the SDK's way and kept as a prototype; each request gets a copy of its attributes with fresh
per-connection state (`FRESH`: the scratch dict and the exit stack), sharing the rest, which a born-ready connection
never changes (the event is set and stays set; the models were shared already). A handler's writes to the copy's
attributes stay the copy's own.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from mcp.server.connection import _NO_CHANNEL, Connection
from mcp_types import ClientCapabilities, Implementation, InitializeRequestParams
from pydantic import BaseModel, ValidationError

from mcp_hub.shapes import Shape, shape_text

M = TypeVar("M", bound=BaseModel)
KEPT: Final = 1024
"""Distinct envelopes whose models are kept; beyond that the cache starts over."""
FRESH: Final = frozenset({"state", "exit_stack"})
"""A connection's attributes made anew for every request (its own scratch state and teardown)."""
SHARED: Final = frozenset(
    {"outbound", "protocol_version", "session_id", "client_capabilities", "_client_params", "initialized"}
)
"""A born-ready connection's attributes a request's copy shares with the prototype (a test holds the SDK to both)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """What `from_envelope` makes of an envelope: its models (None where a value does not validate)."""

    client_info: Implementation | None
    capabilities: ClientCapabilities | None
    client_params: InitializeRequestParams | None
    prototype: Connection
    """`Connection.from_envelope`'s connection for the envelope, made from the models above."""


_typed: dict[tuple[str, Shape], Envelope] = {}


def typed_envelope(protocol_version: str, client_info: Any, capabilities: Any) -> Envelope:
    """The models of an envelope, made the first time it is seen (each time, for values nested too deep to key).

    The two values are written as one text, of the pair (a JSON array, or its `repr`): it tells pairs apart as the
    two texts would, for one serialiser call instead of two."""
    text = shape_text([client_info, capabilities])
    if text is None:
        return _typed_now(protocol_version, client_info, capabilities)
    key = (protocol_version, text)
    found = _typed.get(key)
    if found is None:
        if len(_typed) >= KEPT:
            _typed.clear()
        found = _typed[key] = _typed_now(protocol_version, client_info, capabilities)
    return found


def _typed_now(protocol_version: str, client_info: Any, capabilities: Any) -> Envelope:
    info, declared = _model(Implementation, client_info), _model(ClientCapabilities, capabilities)
    params = None
    if info is not None and declared is not None:
        params = InitializeRequestParams(protocol_version=protocol_version, capabilities=declared, client_info=info)
    prototype = Connection(_NO_CHANNEL, protocol_version=protocol_version, client_params=params)
    prototype.client_capabilities = declared
    prototype.initialized.set()
    return Envelope(info, declared, params, prototype)


def connection_for(protocol_version: str, client_info: Any, capabilities: Any) -> Connection:
    """`Connection.from_envelope(protocol_version, client_info, capabilities)`: a copy of the envelope's prototype."""
    prototype = typed_envelope(protocol_version, client_info, capabilities).prototype
    connection: Connection = object.__new__(Connection)
    attributes = connection.__dict__
    attributes.update(prototype.__dict__)
    attributes["state"] = {}
    attributes["exit_stack"] = AsyncExitStack()
    return connection


def _model(model: type[M], raw: Any) -> M | None:
    try:
        return model.model_validate(raw, by_name=False)
    except ValidationError:
        return None
