"""The JSON the SDK's 2026-07-28 entry writes for an answer (`json.dumps(body, separators=(",", ":"))`), by
pydantic-core's encoder where its bytes are the same.

The C `json` encoder builds a string object per key, value and separator and joins them: about 24,000 instructions
for a small tool result. pydantic-core writes the same JSON value in a fraction of that, and its bytes differ from
`json`'s in three ways only, each of which leaves a mark in its output:

- characters beyond ASCII: `json` escapes them (`\\u00e9`), pydantic-core writes them as UTF-8 (bytes above 0x7F);
- DEL (0x7F): `json` escapes it, pydantic-core writes it as it is;
- floats of magnitude from 1e-9 to 1e-4: `json` writes `repr` (`1e-05`, `1e-09`), pydantic-core `0.00001` and
  `1e-9`, so its text holds `0.0000` or `e-` (every other finite float, `NaN` and the infinities are written alike:
  `test_wire_json.py` holds pydantic-core to it).

Everything else (strings' escapes, integers of any size, `true`, `false`, `null`) the two write alike. Where a mark
is found (text in a string can hold one too), `json` writes the answer. The bodies written here are JSON dumps
already (string keys, JSON values), so nothing is left to an encoder's default.
"""

from __future__ import annotations

from typing import Any, Final

import pydantic_core

from toolpolicy.json_text import compact_encoder

_encode = compact_encoder(check_circular=False)
"""`json.dumps(..., separators=(",", ":"))` with the encoder made once, without the circular-reference check: what
is written is a fresh JSON dump of a message, which cannot refer to itself."""
_DEL: Final = b"\x7f"
_SMALL_FLOAT: Final = (b"0.0000", b"e-")
"""What pydantic-core's text of a float it writes otherwise than `json` holds (see the module doc)."""


def sdk_json(body: Any) -> bytes:
    """`json.dumps(body, separators=(",", ":")).encode()`, by pydantic-core wherever that gives the same bytes."""
    try:
        fast = pydantic_core.to_json(body, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:  # a lone surrogate, say: `json` escapes it
        return _encode(body).encode()
    if fast.isascii() and _DEL not in fast and _SMALL_FLOAT[0] not in fast and _SMALL_FLOAT[1] not in fast:
        return fast
    return _encode(body).encode()
