"""The client info and capabilities of 2026-07-28 `_meta` envelopes, validated once per distinct envelope.

`Connection.from_envelope` validates both raw values into models on every request, and a client sends the same
ones every time. `typed_envelope` keeps the models it made per distinct pair (by their `repr`, which tells JSON
values apart) and hands them to `from_envelope`, which takes a model as it is. A value that does not validate is
passed on raw, for `from_envelope` to treat as not supplied, as before.
"""

from __future__ import annotations

from typing import Any, Final

from mcp_types import ClientCapabilities, Implementation
from pydantic import BaseModel, ValidationError

KEPT: Final = 1024
"""Distinct envelopes whose models are kept; beyond that the cache starts over."""
_typed: dict[tuple[str, str], tuple[Any, Any]] = {}


def typed_envelope(client_info: Any, capabilities: Any) -> tuple[Any, Any]:
    """`client_info` and `capabilities` as models where they validate (as `from_envelope` would), else as given."""
    key = (repr(client_info), repr(capabilities))
    found = _typed.get(key)
    if found is None:
        if len(_typed) >= KEPT:
            _typed.clear()
        found = _typed[key] = (_model(Implementation, client_info), _model(ClientCapabilities, capabilities))
    return found


def _model(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw, by_name=False)
    except ValidationError:
        return raw
