"""`json.JSONEncoder(separators=(",", ":"), ...).encode` without its per-call set-up, for JSON written on every
request (an MCP response, the audited arguments' hash, an audit record's details).

`JSONEncoder.encode` makes a C encoder (and a float formatter) on every call, which costs about as much as encoding
a small message. `compact_encoder` makes it once and writes what `json.dumps` with the same options writes. With the
circular-reference check, the encoder keeps its marker dict between calls: that dict is empty after every
encoding that succeeded and is emptied after one that failed, as a fresh encoder's would start empty; such an
encoder is for one thread at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import (  # type: ignore[attr-defined]
    c_make_encoder,
    encode_basestring,
    encode_basestring_ascii,
)
from typing import Any


def compact_encoder(
    *, sort_keys: bool = False, ensure_ascii: bool = True, check_circular: bool = True
) -> Callable[[Any], str]:
    """`json.JSONEncoder(separators=(",", ":"), sort_keys=..., ensure_ascii=..., check_circular=...).encode`."""
    encoder = json.JSONEncoder(
        separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii, check_circular=check_circular
    )
    if c_make_encoder is None:  # an interpreter without the C accelerator: the module's own
        return encoder.encode
    strings = encode_basestring_ascii if ensure_ascii else encode_basestring
    markers: dict[int, Any] | None = {} if check_circular else None
    made = c_make_encoder(markers, encoder.default, strings, None, ":", ",", sort_keys, False, True)

    def encode(value: Any) -> str:
        if isinstance(value, str):  # `JSONEncoder.encode`'s own shortcut
            return encoder.encode(value)
        try:
            return "".join(made(value, 0))
        except BaseException:
            if markers is not None:
                markers.clear()
            raise

    return encode
