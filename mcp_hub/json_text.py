"""`json.JSONEncoder(...).encode` for the JSON the MCP path writes on every call, without the per-call set-up.

`JSONEncoder.encode` makes a C encoder, a float formatter and, with the circular-reference check, a marker dict on
every call, which costs about as much as encoding a small message. `compact_encoder` makes the C encoder once (for
values that cannot refer to themselves: no check, so no marker dict shared between calls) or makes it alone per
call (with the check, on a fresh marker dict), and writes what `json.dumps` with the same options writes.
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
    options = (encoder.default, strings, None, ":", ",", sort_keys, False, True)
    if not check_circular:
        kept = c_make_encoder(None, *options)

        def encode_kept(value: Any) -> str:
            if isinstance(value, str):  # `JSONEncoder.encode`'s own shortcut
                return encoder.encode(value)
            return "".join(kept(value, 0))

        return encode_kept

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return encoder.encode(value)
        return "".join(c_make_encoder({}, *options)(value, 0))

    return encode
