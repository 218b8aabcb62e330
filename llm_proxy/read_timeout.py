"""`read_timeout` (aiohttp's `sock_read`) with one timer per silence, not one per read.

aiohttp measures `sock_read` by cancelling the connection's timer and starting a new one on every read from the
socket: two event-loop calls for each chunk of a stream (about 2.3 us with uvloop, a fifth of what relaying a chunk
costs the gateway). Here a read only moves the deadline (one clock read); the one timer, when it fires, either
finds the deadline moved and waits again for what is left, or times the connection out exactly as aiohttp does.
The answer is the same: a provider silent for longer than `read_timeout` fails with aiohttp's `SocketTimeoutError`,
and one that keeps sending never does. Nor is the timer cancelled when a response has been read (aiohttp stops the
timeout then, and starts it again for the next response on the kept-alive connection: a timer made and cancelled
per request); stopping only disarms it, and the next response re-arms it. The timer goes with its connection.

The same protocol skips aiohttp's resume of a connection that was not paused: its `StreamReader` asks for one for
each chunk it hands out (`resume_reading`): four Python calls and a parser step per chunk, some 60 calls on the way
to a stream's first event when the provider's chunks came together (a burst is read whole).

`Connector` is a `TCPConnector` whose connections use `LazyReadTimeout`. It relies on two of aiohttp's internals
(the connector's `_factory`, the protocol's timer methods and pause flags); `tests/llm_proxy/test_read_timeout.py`
fails if a new aiohttp changes them, rather than the gateway silently going back to a timer per read.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import aiohttp
from aiohttp.client_proto import ResponseHandler


class LazyReadTimeout(ResponseHandler):
    """A connection's protocol whose read timeout is re-armed only when its timer fires."""

    _deadline = 0.0
    """`loop.time()` by which the next byte must come, while a read timeout runs."""
    _armed = False
    """Whether a read timeout runs: a response is being read, and the connection is not paused."""

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._drop_timeout()
            return
        loop = self._loop
        deadline = loop.time() + timeout
        self._armed = True
        handle = self._read_timeout_handle
        if handle is not None and deadline >= self._deadline:
            self._deadline = deadline  # the running timer finds it when it fires
            return
        if handle is not None:  # a shorter timeout than the one running: its timer would fire too late
            handle.cancel()
        self._deadline = deadline
        self._read_timeout_handle = loop.call_at(deadline, self._read_timer_fired)

    def resume_reading(self, resume_parser: bool = True) -> None:
        # aiohttp's `StreamReader` calls this for every chunk it hands out while its buffer is below its low-water
        # mark, paused or not: aiohttp then feeds its parser nothing (`data_received(b"")`, for data a pause held
        # back) and resumes a transport that was reading anyway, four Python calls and the parser's per chunk of a
        # stream. Nothing is held back unless reading is paused (a pause sets one of these flags, and only a resume
        # clears them), so a resume without a pause does nothing.
        if self._reading_paused or self._buffer_paused:
            super().resume_reading(resume_parser)

    def _drop_timeout(self) -> None:
        # Disarmed, not cancelled: the connection's next response takes the timer over.
        self._armed = False

    def _read_timer_fired(self) -> None:
        self._read_timeout_handle = None
        if not self._armed:  # no read under way: the next one starts a timer
            return
        if self._loop.time() < self._deadline:  # bytes came while it ran: wait for what is left of the silence
            self._read_timeout_handle = self._loop.call_at(self._deadline, self._read_timer_fired)
            return
        self._on_read_timeout()

    def _stop_timer(self) -> None:
        """Cancel the timer: the connection ends, and the timer would keep it in memory until it fires."""
        self._armed = False
        handle = self._read_timeout_handle
        if handle is not None:
            handle.cancel()
            self._read_timeout_handle = None

    def close(self) -> None:
        super().close()
        self._stop_timer()

    def abort(self) -> None:
        super().abort()
        self._stop_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)


class Connector(aiohttp.TCPConnector):
    """`aiohttp.TCPConnector` whose connections time reads out with `LazyReadTimeout`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # A partial, as aiohttp makes it (its TLS upgrade calls the factory too).
        self._factory = cast("functools.partial[ResponseHandler]", functools.partial(LazyReadTimeout, loop=self._loop))
