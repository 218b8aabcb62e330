"""The counter store contract, shared by the in-process and the Redis implementations.

A counter has committed usage (`used`, summed over one or more bucket keys) and holds (reservations of requests in
flight, kept per request with a deadline so a crashed replica's holds expire). `reserve` checks every limit and
takes every hold in one atomic step, or takes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


class CounterStoreError(Exception):
    """The counter store could not answer (e.g. Redis unreachable)."""


# Not frozen, and never changed once made: a request whose amounts differ from the recent ones' gets a new Limit per
# limit (`plan.with_amount`), and a frozen dataclass sets each of its eleven fields through `object.__setattr__`.
# Nothing hashes a Limit (the Redis store remembers its texts by the object's id, held with them).
@dataclass(slots=True)
class Limit:
    """One limit to check and reserve against, in integer units (requests, tokens, or nano-USD)."""

    hold_key: str
    """Where this limit's holds are kept (one per limit, whatever the window)."""
    used_keys: tuple[str, ...]
    """Buckets whose sum is the committed usage."""
    add_key: str
    """The bucket committed usage goes to."""
    limit: int
    amount: int
    """What this request takes."""
    commit: bool = False
    """Count `amount` as used at once (request counts) instead of holding it until settlement."""
    ttl: int | None = None
    """Seconds the bucket keys live."""
    seeded: bool = False
    """Buckets must be seeded before use (budgets from the spend ledger, rate limits from the rate journal): a
    missing bucket is reported, not taken as 0."""
    window_start: float | None = None
    """For seeded single-bucket windows (rate limits), the window's start in epoch seconds: a missing bucket of a
    window that began after the store started holding its data is new, so the store creates it empty instead of
    reporting it (otherwise every new window would cost a seeding round trip). Strictly after: usage stamped at
    the very instant the store started may predate it. None: always report it."""
    journaled: bool = False
    """Usage is also written to the rate journal, the durable copy rate-limit buckets are re-seeded from."""
    used_prefix: str | None = None
    """Set when `used_keys` are this prefix followed by consecutive integers, oldest first (a rolling window's
    buckets): a store may then name them as a range instead of listing them."""
    origin: Limit | None = field(default=None, init=False, compare=False, repr=False)
    """The limit this one is a copy of but for its amount (`plan.with_amount`): a plan's, whose static part a
    store has likely encoded already. None for a limit made any other way (`dataclasses.replace` leaves it None)."""


class ReserveOutcome(NamedTuple):
    """What a reservation found and did (a named tuple: one is made per governed request, and a tuple is made in C;
    a frozen dataclass sets each field through `object.__setattr__`)."""

    ok: bool
    usage: tuple[int, ...]
    """Usage (committed + held) of each limit before this request."""
    failed: int | None = None
    """Index of the first limit that had no room. In a reservation with a `split`, an index at or past it means
    the limits before the split were taken all the same."""
    missing: tuple[str, ...] = ()
    """Seeded buckets that do not exist yet; seed them and reserve again."""


class Settlement(NamedTuple):
    """What to do with one limit's hold when its request finishes: its limit and the usage to commit.

    A store takes any `(limit, actual)` pair: the governor sends plain pairs, a few per request, as a named tuple's
    constructor is Python code (its `__new__`, some 3,000 instructions) where a plain tuple is one bytecode."""

    limit: Limit
    actual: int
    """Usage to commit (0 on release)."""


class CounterStore(Protocol):
    async def reserve(
        self, request_id: str, limits: list[Limit], *, now: float, hold_seconds: float, split: int = 0
    ) -> ReserveOutcome:
        """Atomically: drop expired holds, check every limit has room for its amount, take every amount.

        With `0 < split < len(limits)`, two reservations in one step: `limits[:split]` are checked and taken first,
        then `limits[split:]` are checked against the counters as that left them; when they have no room, the
        first ones stay taken (the outcome's `failed` says which limit had none). Seeded buckets missing anywhere
        are reported before anything is taken.
        """
        ...

    async def settle(self, request_id: str, settlements: Sequence[tuple[Limit, int]], *, now: float) -> None:
        """Drop the request's holds and commit the actual usage (seeded buckets only if they exist).

        A store may queue it: it counts once it lands, at the latest after `flush`. Until then the holds stand at
        their worst case: an over-count only.
        """
        ...

    async def flush(self) -> None:
        """Apply every queued settlement now (a store that queues none returns at once)."""
        ...

    async def seed(self, key: str, used: int, ttl: int | None, *, now: float) -> None:
        """Set a bucket's committed usage unless it already exists."""
        ...

    async def ping(self, *, timeout: float) -> None:
        """Raise CounterStoreError unless the store answers within `timeout` seconds (readiness checks)."""
        ...

    async def aclose(self) -> None: ...
