"""The executor interface: run jobs, ``workers`` at a time, and tell the caller as each one starts and ends.

``Executor.run`` is the one scheduling loop; an implementation only starts a job, waits for some to end,
reads an ended job's outcome and stops the running ones (``local.LocalExecutor``: threads waiting on
processes; ``ray.RayExecutor``: Ray actors on a cluster). The loop runs in the caller's thread, so the
callbacks (``on_start``, ``on_outcome``, ``on_tick`` about once a ``tick`` seconds, e.g. a progress
display) need no locks.

Ctrl-C: the terminal sends SIGINT to the whole process group, so a local job's process gets it too;
SIGTERM to the caller alone (``kill PID``) raises KeyboardInterrupt here as Ctrl-C does. Either way the
loop starts no more jobs, sends every running one SIGTERM (each checkpoints and exits 130), waits for
them, reports every job that ended (``on_outcome``) and raises ``Interrupted``.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable

from experiments.executor.job import Job, Outcome

TICK_SECONDS = 0.5


class Interrupted(KeyboardInterrupt):
    """Ctrl-C reached the executor; every job has ended. ``outcomes``: how each started job ended."""

    def __init__(self, outcomes: list[Outcome], not_started: int):
        super().__init__()
        self.outcomes, self.not_started = outcomes, not_started

    def summary(self) -> str:
        count = {s: sum(o.status == s for o in self.outcomes) for s in ("done", "stopped", "failed")}
        return (f"{count['done']} run(s) finished, {count['stopped']} stopped, {count['failed']} failed, "
                f"{self.not_started} not started")


class _TermAsInterrupt:
    """While running (main thread only): SIGTERM raises KeyboardInterrupt, Ctrl-C's path."""

    def __enter__(self):
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False


class Executor:
    """Runs ``Job``s; ``workers``: how many at once; ``where``: a phrase for the progress output;
    ``init_seconds``: what connecting to the backend took (None: nothing to connect to)."""

    workers: int
    where: str
    init_seconds: float | None = None

    def run(self, jobs: list[Job], on_outcome: Callable[[Outcome], None],
            on_start: Callable[[Job], None] | None = None, on_tick: Callable[[], None] | None = None,
            tick: float = TICK_SECONDS) -> list[Outcome]:
        """Run ``jobs`` in order, ``workers`` at a time; see the module docstring for the callbacks and
        Ctrl-C (``Interrupted``)."""
        queue, running, outcomes = list(jobs), {}, []

        def ended(handle) -> None:
            outcomes.append(self._outcome(handle, running[handle]))
            del running[handle]
            on_outcome(outcomes[-1])

        with _TermAsInterrupt():
            try:
                while queue or running:
                    while queue and len(running) < self.workers:
                        job = queue.pop(0)
                        running[self._start(job)] = job
                        if on_start is not None:
                            on_start(job)
                    for handle in self._wait(list(running), tick):
                        ended(handle)
                    if on_tick is not None:
                        on_tick()
            except KeyboardInterrupt:
                self._stop(list(running))
                while running:
                    for handle in self._wait(list(running), tick):
                        ended(handle)
                raise Interrupted(outcomes, len(queue)) from None
        return outcomes

    def close(self) -> None:
        """Release what the executor holds (threads, actors)."""

    # The implementation's part: ``handle``s are whatever it uses to follow a started job.

    def _start(self, job: Job) -> Any:
        raise NotImplementedError

    def _wait(self, handles: list, timeout: float) -> list:
        """The handles among ``handles`` whose job has ended, after at most ``timeout`` seconds."""
        raise NotImplementedError

    def _outcome(self, handle, job: Job) -> Outcome:
        raise NotImplementedError

    def _stop(self, handles: list) -> None:
        """SIGTERM to the running jobs' processes."""
        raise NotImplementedError
