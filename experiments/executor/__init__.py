"""One way to run many ``rlnn train`` jobs, used by ``rlnn compare``, the suite (``compare --envs``) and
``rlnn sweep``: an ``Executor`` runs ``Job``s ``workers`` at a time and reports each ``Outcome``.

    with open_executor("local" | "ray", workers, address) as executor:
        executor.run(jobs, on_outcome, on_start=progress.started, on_tick=progress.tick)

- ``job``: a job (one run as an ``rlnn train`` process), its outcome, and how its process ends with its
  starter (``die_with_parent``);
- ``base``: the interface and its one scheduling loop, Ctrl-C and SIGTERM (``Interrupted``);
- ``local``: processes on this machine (the default; imports nothing from Ray);
- ``ray``: the same processes started by Ray actors, on a local Ray instance or a cluster;
- ``progress``: every running run's latest step, SPS, return and eval, while they run;
- ``resume``: a command's plan on disk and its ``--resume`` line after Ctrl-C.

Both executors run the same command line for a job, so a run is the same run, bit for bit, whichever
trained it. What stays outside: ``rlnn sweep --early-stop asha`` and ``--search optuna`` run on Ray Tune
(``experiments.sweep.ray_backend``), because ASHA must see every evaluation of a trial while it runs and
stop it, and Optuna proposes the next trial from the finished ones: Tune schedules those trials and trains
their seeds in its own workers. Tune uses this package's Ray session (``ray.ray_session``) only.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Iterator

from agents.config import ConfigError
from experiments.executor.base import Executor, Interrupted
from experiments.executor.job import PARENT_ENV, Job, Outcome, die_with_parent, job_for, orphaned
from experiments.executor.local import LocalExecutor
from experiments.executor.progress import RunProgress
from experiments.executor.resume import SpecFile, resumable

BACKENDS = ("local", "ray")

__all__ = ["BACKENDS", "Executor", "Interrupted", "Job", "LocalExecutor", "Outcome", "PARENT_ENV", "RunProgress",
           "SpecFile", "die_with_parent", "job_for", "open_executor", "orphaned", "ray_module",
           "resumable"]


def ray_module():
    """``experiments.executor.ray``, or a one-line error naming the missing package."""
    try:
        return importlib.import_module("experiments.executor.ray")
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "ray":
            raise
        raise ConfigError("--backend ray needs Ray: pip install 'rlnn[ray]'") from None


@contextlib.contextmanager
def open_executor(backend: str = "local", workers: int | None = None, address: str | None = None) -> Iterator[Executor]:
    """An executor for ``backend``: local processes, ``workers`` at once (default: the cores), or Ray:
    join the cluster at ``address`` or start a local instance with ``workers`` CPUs (default: all cores),
    ``workers`` jobs at once (default: the cluster's CPUs). Ray is joined before the body runs, so a bad
    address fails first; it is left (a local instance stopped) at the end."""
    if backend == "local":
        executor = LocalExecutor(workers)
        try:
            yield executor
        finally:
            executor.close()
        return
    if backend != "ray":
        raise ConfigError(f"--backend {backend!r}: choose from {', '.join(BACKENDS)}")
    ray = ray_module()
    with ray.ray_session(address, workers) as init_seconds:
        executor = ray.RayExecutor(workers, init_seconds, address)
        try:
            yield executor
        finally:
            executor.close()
