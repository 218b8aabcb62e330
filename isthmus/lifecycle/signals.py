"""The served process's signals: SIGTERM and SIGINT start the drain, SIGHUP reloads the configuration.

uvicorn owns SIGTERM and SIGINT (it stops accepting, waits for connections up to its graceful timeout, then runs
the lifespan shutdown); the gateway chains in front of its handler so `/ready` answers 503 from the first instant.
SIGHUP is the gateway's alone: uvicorn leaves it at the default action, which would kill the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def process_signals(on_stop: Callable[[], None], on_reload: Callable[[], None]) -> Iterator[None]:
    """Call `on_stop` (then the handler that was there) on SIGTERM/SIGINT and `on_reload` on SIGHUP, while open.

    Only the main thread can set signal handlers; elsewhere (a server run in a thread) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def stop(sig: int, frame: FrameType | None) -> None:
        on_stop()
        handler = previous[sig]
        if callable(handler):
            handler(sig, frame)
        else:  # nobody else handles it: restore the default action and take it
            signal.signal(sig, handler)
            signal.raise_signal(sig)

    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        for number, handler in previous.items():
            if signal.getsignal(number) is stop:
                signal.signal(number, handler)
