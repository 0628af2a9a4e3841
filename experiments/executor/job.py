"""One job of an executor: an ``rlnn train`` process for one run, and how it ended.

A process per run means a run that crashes or is killed fails alone, and every executor trains exactly
what ``rlnn train`` trains: the same command, the same one-thread BLAS (``THREAD_ENV``), output to the
same log file, whichever machine runs it.

``kill -9`` of whoever started the process cannot be caught, so the process asks the kernel for a SIGTERM
(Ctrl-C's clean stop: checkpoint and exit 130) when its starter dies (``die_with_parent``): none is
orphaned and keeps writing a run that a ``--resume`` would start a second writer on (the run directory's
lock refuses that second writer anyway).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from agents.rundir import RunDir
from experiments import THREAD_ENV

PARENT_ENV = "RLNN_PARENT_PID"      # set for a job's process: the pid whose death must end it


@dataclass(frozen=True)
class Job:
    """One ``rlnn train`` process: a new run of ``algo`` on ``env`` with ``seed`` into ``run_dir``, or
    (``resume``) the continuation of that run from its latest checkpoint. Its output goes to
    ``{log_dir}/{run name}.log``; ``key`` is the caller's label (the sweep's trial number)."""

    algo: str
    env: str
    seed: int
    run_dir: str
    log_dir: str
    total_steps: int | None = None
    config_file: str | None = None
    sets: tuple[str, ...] = ()
    resume: bool = False
    key: Any = None

    @property
    def name(self) -> str:
        return os.path.basename(self.run_dir)

    @property
    def log_path(self) -> str:
        return os.path.join(self.log_dir, f"{self.name}.log")

    def command(self) -> list[str]:
        """The command line, with this machine's Python (``sys.executable`` where the job runs)."""
        cmd = [sys.executable, "-m", "experiments.cli", "train", "--quiet"]
        if self.resume:  # the run's config.json has everything else
            return cmd + ["--resume", self.run_dir]
        cmd += ["--algo", self.algo, "--env", self.env, "--seed", str(self.seed), "--run-dir", self.run_dir]
        if self.config_file is not None:
            cmd += ["--config", self.config_file]
        if self.total_steps is not None:
            cmd += ["--total-steps", str(self.total_steps)]
        for item in self.sets:
            cmd += ["--set", item]
        return cmd


def job_for(run_dir: RunDir, **job: Any) -> Job | None:
    """The job of one run: None if it finished, a resume if it stopped after a checkpoint, else a new run."""
    if run_dir.finished:
        return None
    return Job(run_dir=run_dir.path, resume=run_dir.has_checkpoint(), **job)


@dataclass(frozen=True)
class Outcome:
    job: Job
    code: int
    seconds: float

    @property
    def status(self) -> str:
        """done | stopped (Ctrl-C: checkpointed, resumable) | failed (crashed, killed or diverged)."""
        if self.code == 0:
            return "done"
        return "stopped" if self.code in (130, -signal.SIGINT) else "failed"


class Processes:
    """Runs jobs as processes (``run``, one per calling thread) and stops them all (``terminate``)."""

    def __init__(self):
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def run(self, job: Job) -> Outcome:
        t0 = time.perf_counter()
        os.makedirs(job.log_dir, exist_ok=True)
        env = {**os.environ, **THREAD_ENV, PARENT_ENV: str(os.getpid())}
        # Started under the lock: a process either exists before terminate() (which then stops it) or sees
        # ``stopping`` and never starts. Ctrl-C can land in the caller between handing a job to a worker
        # thread and recording it, and a process started after terminate() would run on unstopped.
        with self.lock:
            if self.stopping:
                return Outcome(job, 130, 0.0)
            with open(job.log_path, "a") as log:
                proc = subprocess.Popen(job.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
            self.procs.add(proc)
        try:
            proc.wait()
        finally:
            with self.lock:
                self.procs.discard(proc)
        return Outcome(job, proc.returncode, time.perf_counter() - t0)

    def terminate(self) -> None:
        """SIGTERM to every running job: each checkpoints and exits 130, as after Ctrl-C; none starts after."""
        with self.lock:
            self.stopping = True
            for proc in self.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)


def die_with_parent() -> None:
    """In a job's process: ask the kernel for SIGTERM (Ctrl-C's clean stop) when the process that started
    it dies, even by ``kill -9``. Linux only (prctl); elsewhere a job may outlive a killed starter."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if orphaned():                          # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def orphaned() -> bool:
    """In a job's process: whether the process named by PARENT_ENV is no longer its parent (it died)."""
    parent = os.environ.get(PARENT_ENV)
    return bool(parent) and os.getppid() != int(parent)
