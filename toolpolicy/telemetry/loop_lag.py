"""How late the event loop runs what it is handed: the delay every request's I/O waits before the loop gets to it.

A thread of its own hands the loop a callback every `interval` seconds (as a socket becoming readable would) and the
callback observes how long it waited: the loop busy with other callbacks, a batch of work that does not yield, or
another thread holding the GIL all show up here, where a request's own duration would mix them with the upstream's.
Observed into `isthmus_event_loop_lag_seconds`; one wake-up of the loop per interval is all it costs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Histogram

logger = logging.getLogger(__name__)

LAG_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class LoopLag:
    """Probes one event loop's lag from a daemon thread every `interval` seconds, into `histogram`."""

    def __init__(
        self, histogram: Histogram, *, interval: float, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self.histogram = histogram
        self.interval = interval
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is not None:
            return
        self._loop = loop
        self._stopped = stopped = threading.Event()  # each thread its own: a stopped one may still be asleep
        self._thread = threading.Thread(target=self._run, args=(stopped,), name="isthmus-loop-lag", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing: the thread ends at its next wake-up, within `interval` (not waited for here: stopping is
        on the event loop, and the thread's probe would only wait for it)."""
        self._stopped.set()
        self._thread = None

    def probe(self) -> None:
        """Hand the loop one callback stamped with the time now (from any thread)."""
        assert self._loop is not None, "start() first"
        self._loop.call_soon_threadsafe(self._arrived, self._clock())

    def _arrived(self, posted: float) -> None:
        self.histogram.observe(max(0.0, self._clock() - posted))

    def _run(self, stopped: threading.Event) -> None:
        # `time.sleep`, not `stopped.wait(interval)`: a timed wait on a lock is what libfaketime (the date tests)
        # cannot fake, and a probe every `interval` needs no earlier wake-up.
        while True:
            time.sleep(self.interval)
            if stopped.is_set():
                return
            try:
                self.probe()
            except RuntimeError:  # the loop is closed: nothing left to measure
                logger.debug("event loop closed; lag probe stopping")
                return
