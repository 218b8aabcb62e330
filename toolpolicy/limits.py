"""Value types of budgets and rate limits: periods and `COUNT/WINDOW` rates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

BudgetPeriod = Literal["1h", "1d", "1w", "1M"]

_WINDOW_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*([0-9]{1,15})\s*/\s*([0-9]{0,9})\s*([smhd])\s*$", re.ASCII)
MAX_RATE_COUNT = 10**12
"""Most events a rate may allow per window: counters are 64-bit integers, with room to add to them."""
MAX_WINDOW_SECONDS = 366 * 86400
"""Longest rate window, a year: counters expire after their window."""


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `limit` events per `window_seconds`."""

    limit: int
    window_seconds: int

    def __str__(self) -> str:
        for unit, seconds in reversed(_WINDOW_SECONDS.items()):
            if self.window_seconds % seconds == 0:
                return f"{self.limit}/{self.window_seconds // seconds}{unit}"
        raise AssertionError("every window is a whole number of seconds")


def parse_rate(text: str) -> Rate:
    """Parse `600/1m`, `100000/1h`, `5/s` into a Rate; raise ValueError naming the expected form."""
    match = _RATE.match(text)
    shown = text if len(text) <= 40 else f"{text[:40]}..."
    if match is None:
        raise ValueError(f"rate {shown!r} must be COUNT/WINDOW, e.g. 600/1m (windows: s, m, h, d)")
    count, multiple, unit = match.groups()
    window = int(multiple or 1) * _WINDOW_SECONDS[unit]
    if window == 0:
        raise ValueError(f"rate {shown!r} has a zero-length window")
    if window > MAX_WINDOW_SECONDS:
        raise ValueError(f"rate {shown!r} has a window longer than a year ({MAX_WINDOW_SECONDS}s)")
    if int(count) > MAX_RATE_COUNT:
        raise ValueError(f"rate {shown!r} allows more than {MAX_RATE_COUNT} per window")
    return Rate(limit=int(count), window_seconds=window)
