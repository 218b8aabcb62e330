"""The connection of a 2026-07-28 request, built from its `_meta` envelope, validated once per distinct envelope.

`Connection.from_envelope` validates the raw client info and capabilities into models, and builds the
`InitializeRequestParams` they make, on every request; a client sends the same ones every time. `connection_for`
builds the same connection from what it kept for the envelope (by its version and the values' `repr`, which tells
JSON values apart): a value that does not validate counts as not supplied, as in `from_envelope`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeVar

from mcp.server.connection import _NO_CHANNEL, Connection
from mcp_types import ClientCapabilities, Implementation, InitializeRequestParams
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
KEPT: Final = 1024
"""Distinct envelopes whose models are kept; beyond that the cache starts over."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """What `from_envelope` makes of an envelope: its models (None where a value does not validate)."""

    client_info: Implementation | None
    capabilities: ClientCapabilities | None
    client_params: InitializeRequestParams | None


_typed: dict[tuple[str, str, str], Envelope] = {}


def typed_envelope(protocol_version: str, client_info: Any, capabilities: Any) -> Envelope:
    """The models of an envelope, made the first time it is seen."""
    key = (protocol_version, repr(client_info), repr(capabilities))
    found = _typed.get(key)
    if found is None:
        if len(_typed) >= KEPT:
            _typed.clear()
        info, declared = _model(Implementation, client_info), _model(ClientCapabilities, capabilities)
        params = None
        if info is not None and declared is not None:
            params = InitializeRequestParams(protocol_version=protocol_version, capabilities=declared, client_info=info)
        found = _typed[key] = Envelope(info, declared, params)
    return found


def connection_for(protocol_version: str, client_info: Any, capabilities: Any) -> Connection:
    """`Connection.from_envelope(protocol_version, client_info, capabilities)`, with the kept models."""
    typed = typed_envelope(protocol_version, client_info, capabilities)
    connection = Connection(_NO_CHANNEL, protocol_version=protocol_version, client_params=typed.client_params)
    connection.client_capabilities = typed.capabilities
    connection.initialized.set()
    return connection


def _model(model: type[M], raw: Any) -> M | None:
    try:
        return model.model_validate(raw, by_name=False)
    except ValidationError:
        return None
