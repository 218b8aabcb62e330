"""anyio cancel scopes for the per-request paths, made without asking which event loop runs them.

`anyio.CancelScope()` and `anyio.current_time()` look up the running async library (sniffio, then the current task)
each time they are called, several times a request; the hub runs on asyncio only (its fast paths use asyncio's own
tasks, locks and timers), so these make asyncio's scope, and read its loop's clock, directly: the same objects.
"""

from __future__ import annotations

import asyncio
import math

import anyio
from anyio._backends._asyncio import CancelScope as _AsyncioCancelScope

_new_scope = object.__new__
_init_scope = _AsyncioCancelScope.__init__


def cancel_scope(*, deadline: float = math.inf, shield: bool = False) -> anyio.CancelScope:
    """`anyio.CancelScope(deadline=deadline, shield=shield)`, in a task on asyncio.

    Made as the class's `__new__` makes it (`object.__new__`: it takes its keywords only to refuse positional ones)
    and initialised by position: calling the class builds a dict of the keywords and runs `__new__`'s frame, which
    cost about as much again as the scope's `__init__` (two scopes a call).
    """
    scope: _AsyncioCancelScope = _new_scope(_AsyncioCancelScope)
    _init_scope(scope, deadline, shield)
    return scope


def current_time() -> float:
    """`anyio.current_time()`: the running asyncio loop's clock."""
    return asyncio.get_running_loop().time()
