"""The Ray executor (``pip install 'rlnn[ray]'``): the same ``rlnn train`` processes as the local executor,
each started by a Ray actor somewhere on a cluster (or a local Ray instance), ``workers`` at once.

An actor (``_Slot``, one CPU) runs one job at a time through ``job.Processes``, exactly as a local worker
thread does: the same command line, environment, log file and exit code, so a run trained here is bit
for bit the run the local executor trains. Actors are reused from job to job, so a cluster starts at most
``workers`` of them. Ctrl-C (or SIGTERM) on the driver asks every busy actor to SIGTERM its process (each
checkpoints and exits 130) and waits for their outcomes. If the driver dies (``kill -9``), Ray ends its
actors. On a local instance (started here, without Ray's killing of a worker's child processes) each
job's process then gets the SIGTERM it asked for (``job.die_with_parent``) and checkpoints, as with local
processes; on a cluster started with Ray's defaults Ray kills those processes along with their actor, so
a run keeps what it wrote up to its last checkpoint (what any run keeps after ``kill -9``) and
``--resume`` continues from there.

Run directories and logs are written where the job runs: on a multi-node cluster put the command's
directory on a filesystem every node mounts at the same path, so that progress, reports and ``--resume``
see every run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

import ray
from ray.exceptions import RayError

from agents.config import ConfigError
from experiments import THREAD_ENV
from experiments.executor.base import Executor
from experiments.executor.job import Job, Outcome, Processes


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None):
    """Join the cluster at ``address`` or start a local Ray instance with ``num_cpus`` CPUs (default: all
    cores), yield the seconds that took, and disconnect/stop Ray at the end; yields 0.0 and leaves Ray
    alone when it is already initialized (e.g. by a caller)."""
    if ray.is_initialized():
        yield 0.0
        return
    common = dict(log_to_driver=False, logging_level=logging.WARNING, runtime_env={"env_vars": dict(THREAD_ENV)})
    t0 = time.perf_counter()
    if address:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"--address {address}: cannot join a Ray cluster ({first}); start one with "
                              "`ray start --head`; with Ray's token authentication use the head's ~/.ray/auth_token "
                              "and RAY_AUTH_MODE=token for explicit addresses") from None
    else:
        # address="local": always a new instance, never a cluster found on this machine or in RAY_ADDRESS.
        # Ray SIGKILLs a worker's child processes when the worker exits; without that, a job's process gets
        # the SIGTERM it asked for (die_with_parent) and checkpoints on its way out, as a local one does.
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 _system_config={"kill_child_processes_on_worker_exit": False}, **common)
    try:
        yield time.perf_counter() - t0
    finally:
        ray.shutdown()


@ray.remote(num_cpus=1, max_concurrency=2)      # two threads: ``stop`` reaches a slot busy in ``run``
class _Slot:
    def __init__(self):
        self.processes = Processes()

    def run(self, job: Job) -> Outcome:
        return self.processes.run(job)

    def stop(self) -> None:
        self.processes.terminate()


class RayExecutor(Executor):
    """Jobs on the Ray instance this process is connected to (``ray_session``); ``workers`` at once, at
    most the cluster's CPUs (default: all of them)."""

    def __init__(self, workers: int | None = None, init_seconds: float = 0.0, address: str | None = None):
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.workers = min(workers or cpus, cpus)
        how = f"cluster {address}, joined" if address else "local instance, started"
        self.init_seconds = init_seconds
        self.where = f"Ray ({how} in {init_seconds:.1f} s, {cpus} CPU(s)), {self.workers} at once"
        self.idle: list = []
        self.busy: dict = {}        # ObjectRef of a run -> (its actor, its start time)

    def _start(self, job: Job):
        slot = self.idle.pop() if self.idle else _Slot.remote()
        ref = slot.run.remote(job)
        self.busy[ref] = (slot, time.perf_counter())
        return ref

    def _wait(self, handles: list, timeout: float) -> list:
        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0)
        return ready

    def _outcome(self, handle, job: Job) -> Outcome:
        slot, t0 = self.busy.pop(handle)
        try:
            outcome = ray.get(handle)
        except RayError:        # the actor died (its node left, or it was killed): the job failed, the slot is gone
            return Outcome(job, 1, time.perf_counter() - t0)
        self.idle.append(slot)
        return outcome

    def _stop(self, handles: list) -> None:
        stops = [slot.stop.remote() for slot, _ in self.busy.values()]
        ray.wait(stops, num_returns=len(stops), timeout=30)

    def close(self) -> None:
        for slot in self.idle + [slot for slot, _ in self.busy.values()]:
            ray.kill(slot)
        self.idle, self.busy = [], {}
