"""SIGTERM, which schedulers and `kill` send, stops a search exactly as Ctrl-C does: cleanly, status 'stopped'."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def interrupt_on_sigterm() -> Iterator[Callable[[], bool]]:
    """While inside, SIGTERM runs what SIGINT would (asyncio's handler cancels the search; outside the event loop
    it raises KeyboardInterrupt). Yields a function that says whether a SIGTERM came. Only the main thread can
    handle signals, so elsewhere (a search started from a thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received: list[int] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):  # asyncio's (cancels the main task), or Python's default (KeyboardInterrupt)
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job) or left to the system: still stop cleanly
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGTERM, previous)
