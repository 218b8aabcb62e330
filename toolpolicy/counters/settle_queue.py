"""Settlements off the request path: queued, then sent with the next reservation or, when none comes, by a tick.

A finished request's settlement (drop its holds, commit its usage) need not hold up its response: until it lands
the request's holds stand at their worst case, so a settlement sent late can only over-count for a moment, never
under-count. The queue hands what waits to the next reservation, which sends it ahead of itself in the same script
call (so a request costs one round trip of its own); what no reservation takes within `interval` seconds is sent by
a tick, in one call, and a reservation waits for a tick's call under way. So a reservation sees every settlement
queued before it, except one carried by another reservation still on the wire, which lands a moment later.

A tick sends only once the oldest settlement waiting has waited the whole interval: one queued since the timer was
set is left to the next reservation (the timer is set again for it). Requests a little less than `interval` apart
(a few tens a second) are each settled by the next one's reservation, not half of them by a call of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from toolpolicy.counters.base import CounterStoreError

logger = logging.getLogger(__name__)

Send = Callable[[list[str]], Awaitable[None]]


class SettleQueue:
    """Encoded settlements waiting to be sent, one frame per request (the form `settle_all` of the Redis scripts
    reads, all of them in one argument)."""

    def __init__(self, send: Send, *, interval: float) -> None:
        self._send = send
        self._interval = interval
        self._args: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._first_at = 0.0
        """When the oldest settlement waiting was queued (loop time; meaningless while none waits)."""
        self._armed_at = 0.0
        """The loop time the timer counts its interval from: what waited since then has waited a whole one."""
        self._flight: asyncio.Task[None] | None = None
        self.sent_alone = 0
        """Calls that carried settlements only (ticks and flushes), not riding with a reservation."""

    def add(self, settlement: str) -> None:
        """Queue one request's settlement, encoded and framed (`redis_scripts.frame`): a line of 2n numbers (per
        settlement the amount to commit and the amount held), the n static parts, a line each, then the request's id."""
        if not self._args:
            loop = asyncio.get_running_loop()
            self._first_at = loop.time()
            if self._timer is None:
                self._arm(loop, self._first_at)
        self._args.append(settlement)

    async def take(self) -> list[str]:
        """Everything queued, for a reservation to carry; after a tick's call under way has landed."""
        if self._flight is not None:
            await asyncio.shield(self._flight)
        args, self._args = self._args, []
        return args

    def take_now(self) -> list[str] | None:
        """`take` when no tick's call is under way (the usual case: no coroutine to await), else None."""
        if self._flight is not None:
            return None
        args, self._args = self._args, []
        return args

    def put_back(self, args: list[str]) -> None:
        """A reservation that carried `args` failed: they go with the next call.

        Nothing is lost when Redis was unreachable (the common failure). When the call timed out after Redis had run
        it, a settlement lands twice: that request's usage then counts twice in its windows (an over-count that lasts
        as long as the window, for a lifetime budget until it is reset; the spend ledger is unaffected)."""
        if args:
            loop = asyncio.get_running_loop()
            if not self._args:
                self._first_at = loop.time()
            self._args[:0] = args
            if self._timer is None:
                self._arm(loop, loop.time())

    def _arm(self, loop: asyncio.AbstractEventLoop, start: float) -> None:
        self._armed_at = start
        self._timer = loop.call_at(start + self._interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if not self._args:
            return
        loop = asyncio.get_running_loop()
        if self._flight is not None:  # a call under way: look again an interval from now
            self._arm(loop, loop.time())
        elif self._first_at <= self._armed_at:  # the oldest has waited a whole interval: no reservation came
            self._flight = loop.create_task(self._send_alone())
        else:  # all queued since the timer was set (a reservation took the older ones): due an interval after
            self._arm(loop, self._first_at)

    async def _send_alone(self) -> None:
        args, self._args = self._args, []
        try:
            self.sent_alone += 1
            await self._send(args)
        except CounterStoreError as exc:
            # As when a settlement on the request path failed: the holds expire on their own (reservation_ttl),
            # the spend ledger and the rate journal have the usage.
            logger.error("could not settle %d queued requests in the counter store: %s", len(args), exc)
        finally:
            self._flight = None

    async def flush(self) -> None:
        """Send everything queued now and wait until it has landed (or failed, logged)."""
        while self._args or self._flight is not None:
            if self._flight is None:
                self._flight = asyncio.get_running_loop().create_task(self._send_alone())
            await asyncio.shield(self._flight)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()
