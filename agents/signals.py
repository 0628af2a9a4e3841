"""Ctrl-C and SIGTERM as a flag the training loop checks between steps, so it can stop cleanly."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, checkpoints and exits cleanly.
    A second Ctrl-C interrupts at once."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False
