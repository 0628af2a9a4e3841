"""The local executor: every job an ``rlnn train`` process on this machine, ``workers`` at once.

Each worker thread of a ``concurrent.futures`` pool only waits for its job's process, so threads are
enough to keep ``workers`` runs going; the processes do the work.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from experiments.executor.base import Executor
from experiments.executor.job import Job, Outcome, Processes


class LocalExecutor(Executor):
    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.where = f"{self.workers} local worker(s)"
        self.processes = Processes()
        self.threads = ThreadPoolExecutor(max_workers=self.workers)

    def _start(self, job: Job) -> Future:
        return self.threads.submit(self.processes.run, job)

    def _wait(self, handles: list[Future], timeout: float) -> list[Future]:
        return list(wait(handles, timeout, return_when=FIRST_COMPLETED).done)

    def _outcome(self, handle: Future, job: Job) -> Outcome:
        return handle.result()

    def _stop(self, handles: list[Future]) -> None:
        self.processes.terminate()   # after Ctrl-C they also got SIGINT; either way each checkpoints and exits

    def close(self) -> None:
        self.threads.shutdown(wait=True)
