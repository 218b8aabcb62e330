"""`total_timeout` of a streamed request with one timer for all streams, not one each.

aiohttp measures a request's `total` timeout with a timer made for the request (`TimeoutHandle.start`, a uvloop
timer started, and cancelled when the connection is released) and a `TimerContext` that its waits enter (the
request's, the response head's, and each read of the body that has to wait): all of it on a stream's way to its
first event. `total_timeout.py` does the same job for whole answers; a stream cannot use it as it is, since its
task does other work between reads (it relays each chunk to the client), and aiohttp's timer cancels only a wait
under way, never that work.

So a stream's `StreamDeadline` says which task waits on the provider, while it does (`waiting`, set around each
await of `Upstream.post_stream`); `StreamTimeouts` keeps the streams under way in the order they started, which
is the order of their deadlines (every stream of one `Upstream` has the same total), and one timer, armed for the
oldest one's (`total_timeout.Deadlines`, as for whole answers). When a stream's deadline comes, as with aiohttp's
timer: a wait under way is cancelled, and the cancellation leaves as `TimeoutError` unless the task was being
cancelled anyway; a later read returns what is already buffered, and raises `TimeoutError` if it would wait.

The deadline is aiohttp's: `total` seconds from the request's start, rounded up to a whole second of the loop's
clock from `ceil_threshold` seconds on.
"""

from __future__ import annotations

import asyncio

from llm_proxy.total_timeout import Deadlines


class StreamDeadline:
    """One stream's deadline, and the task waiting on its provider, if one is."""

    __slots__ = ("cancelling", "expired", "timed_out", "waiting")

    def __init__(self) -> None:
        self.waiting: asyncio.Task[object] | None = None
        """The task awaiting the provider (the request, or a read that has to wait), while it does."""
        self.expired = False
        """The deadline has come: a read that would wait raises `TimeoutError`."""
        self.timed_out = False
        """The deadline cancelled a wait under way."""
        self.cancelling = 0
        """`waiting.cancelling()` when it started to wait: more than that after the deadline's cancellation is taken
        back, and someone else cancelled it too."""

    def wait(self) -> None:
        """The current task starts to wait on the provider (`waiting = None` when it is done)."""
        task = self.waiting = asyncio.current_task()
        self.cancelling = task.cancelling() if task is not None else 0

    def expire(self) -> None:
        self.expired = True
        task = self.waiting
        if task is not None:
            self.timed_out = True
            task.cancel()

    def is_timeout(self) -> bool:
        """Whether the `CancelledError` leaving the wait under way is this deadline's, to be raised as
        `TimeoutError`: as aiohttp decides, a cancellation asked for by anyone else goes on."""
        task = self.waiting
        self.waiting = None
        if not self.timed_out or task is None:
            return False
        self.timed_out = False
        return task.uncancel() <= self.cancelling


class StreamTimeouts(Deadlines[StreamDeadline]):
    """The deadlines of the streams under way (`enter` when its request starts, `leave` when it is over), oldest
    first, and the one timer for the oldest."""

    def _expire(self, deadline: StreamDeadline) -> None:
        deadline.expire()
