"""An API process told to stop (SIGTERM, or Ctrl-C) answers its held long-polls at once.

uvicorn stops taking connections and waits for the requests in flight; a long-poll would hold it
for up to 30 s, past a rolling deploy's grace period. So the signal also drains the change
listener: every held wait answers with the row as it is now, and the login server asks again,
of another process. uvicorn's own handler still runs, after ours.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from shared.kit.changes import ChangeListener

_STOPPING = (signal.SIGTERM, signal.SIGINT)


def drain_when_stopped(listener: ChangeListener | None) -> Callable[[], None]:
    """Chain a handler before the server's for each stopping signal; returns what puts the
    server's back. Nothing to do without a listener (nobody waits), and nothing but in the main
    thread, the only one that may set handlers (an app under test runs in another)."""
    if listener is None or threading.current_thread() is not threading.main_thread():
        return _nothing
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {sig: signal.getsignal(sig) for sig in _STOPPING}

    def stopping(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(listener.drain)
        server_handler = previous[signal.Signals(signum)]
        if callable(server_handler):
            server_handler(signum, frame)

    for sig in _STOPPING:
        signal.signal(sig, stopping)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _nothing() -> None:
    """Nothing was set: nothing to put back."""
