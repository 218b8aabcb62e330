"""Request ids for requests that bring no usable `x-request-id` (LLM, MCP and admin edges alike): unique, and cheap.

`uuid.uuid4().hex` costs a system call and a `UUID` object per request. An id only needs to be unique, so it is a
random per-process prefix (64 bits, drawn again in a forked child) and a counter: 32 hex digits, as a UUID's hex.
"""

from __future__ import annotations

import itertools
import os

_prefix = ""
_counter = itertools.count(1)


def _draw() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count(1)


_draw()
os.register_at_fork(after_in_child=_draw)


def fresh_request_id() -> str:
    """A new id, unique among this process's and (with overwhelming likelihood) every other process's."""
    return f"{_prefix}{next(_counter):016x}"
