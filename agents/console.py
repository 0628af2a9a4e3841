"""Console output that a reader who went away cannot stop: ``rlnn train ... | head -3`` trains to its end.

Console output is a convenience. ``console_stream(stream)`` wraps a text stream so that the first write or
flush that fails (nobody reads any more: ``BrokenPipeError``; or a redirect to a full disk) silences it for
the rest of the process. Where the stream has a file descriptor, that descriptor is then pointed at /dev/null,
so what is still buffered, and Python's own flush of stdout at exit, go nowhere instead of failing again
(the recipe of the Python docs' note on SIGPIPE). Every console print of the run loop and of ``rlnn`` goes
through such a stream; whatever draws the progress display only needs to write to the stream it is given.
"""

from __future__ import annotations

import os
from typing import Any, TextIO


class ConsoleStream:
    """``stream``, with a failed write turned into silence (``silenced`` says it happened). None
    (what ``sys.stdout`` is when the process started with its stdout closed) is silent from the start."""

    def __init__(self, stream: TextIO | None):
        self.wrapped = stream
        self.silenced = stream is None

    def write(self, text: str) -> int:
        if not self.silenced:
            try:
                return self.wrapped.write(text)
            except (OSError, ValueError):     # ValueError: the stream was closed in this process
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.silenced:
            try:
                self.wrapped.flush()
            except (OSError, ValueError):
                self._silence()

    def isatty(self) -> bool:
        """Whether to draw for a terminal: never once silenced."""
        return not self.silenced and hasattr(self.wrapped, "isatty") and self.wrapped.isatty()

    def _silence(self) -> None:
        self.silenced = True
        try:
            fd = self.wrapped.fileno()
        except (AttributeError, OSError, ValueError):   # io.UnsupportedOperation is an OSError
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        try:
            self.wrapped.flush()        # what the failed write left in the buffer goes to /dev/null
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:   # isatty, fileno, encoding...: the wrapped stream's
        return getattr(self.wrapped, name)


def console_stream(stream: TextIO | None) -> ConsoleStream:
    """``stream`` wrapped once (a ConsoleStream is returned as it is)."""
    return stream if isinstance(stream, ConsoleStream) else ConsoleStream(stream)
