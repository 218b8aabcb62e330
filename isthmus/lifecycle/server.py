"""The single-process HTTP server: uvicorn's, exiting 0 after a completed drain.

uvicorn re-raises a stop signal once it has shut down, so the process dies of SIGTERM (status 143) even when every
request finished and the writers flushed; with `--workers` the supervisor exits 0 instead. The gateway exits 0 in
both cases: a clean drain is a clean exit (an abandoned shutdown step exits 1, `Lifecycle.exit_if_stuck`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

from isthmus.lifecycle.draining import DrainingServer


class GatewayServer(DrainingServer):
    """Takes in the connections queued at shutdown (`DrainingServer`), and exits 0 after a completed drain."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()  # handled: the drain ran; do not die of the signal afterwards
