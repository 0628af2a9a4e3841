"""The process pool of ``rlnn compare`` and ``rlnn sweep``: one ``rlnn train`` process per run.

A process per run means a run that crashes or is killed fails alone. Each worker thread of the pool
(``concurrent.futures``) only waits for its process, so threads are enough to keep ``workers`` runs going.

Ctrl-C: the terminal sends SIGINT to the whole process group, so every worker gets it too; each finishes
its step, checkpoints and exits 130. SIGTERM to the parent alone (``kill PID``) is passed on to every
running worker as SIGTERM, which they treat as Ctrl-C. ``kill -9`` of the parent cannot be caught: each
worker asks the kernel for a SIGTERM when its parent dies (``die_with_parent``), so none is orphaned and
keeps writing a run that a ``--resume`` would then start a second writer on (the run directory's lock
refuses that second writer anyway). The pool cancels the jobs that have not started, waits for the
running ones, reports every job that ended (``on_outcome``) and raises ``PoolInterrupted``. A command
runs its whole body (the pool, the summaries, the report) under ``resumable``, which turns Ctrl-C
anywhere in it into exit 130 and the line that resumes it.

A command's plan is a frozen spec dataclass written as JSON into its directory (``SpecFile``), so
``--resume DIR`` plans the same runs again: ``job_for`` skips finished runs and resumes stopped ones
from their last checkpoint.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import typing
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from agents.config import ConfigError, coerce
from agents.rundir import RunDir, read_json, write_json
from experiments import THREAD_ENV


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


class PoolInterrupted(KeyboardInterrupt):
    """Ctrl-C reached the pool; every worker has exited. ``outcomes``: how each started job ended."""

    def __init__(self, outcomes: list[Outcome], not_started: int):
        super().__init__()
        self.outcomes, self.not_started = outcomes, not_started

    def summary(self) -> str:
        count = {s: sum(o.status == s for o in self.outcomes) for s in ("done", "stopped", "failed")}
        return (f"{count['done']} run(s) finished, {count['stopped']} stopped, {count['failed']} failed, "
                f"{self.not_started} not started")


PARENT_ENV = "RLNN_PARENT_PID"      # set for workers: the pid whose death must end them


def die_with_parent() -> None:
    """In a worker: ask the kernel for SIGTERM (Ctrl-C's clean stop) when the pool's process dies, even by
    ``kill -9``. Linux only (prctl); elsewhere a worker may outlive a killed parent."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if orphaned():                          # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def orphaned() -> bool:
    """In a worker: whether the process named by PARENT_ENV is no longer this one's parent (it died)."""
    parent = os.environ.get(PARENT_ENV)
    return bool(parent) and os.getppid() != int(parent)


class _Workers:
    """The running worker processes, so a SIGTERM to the pool reaches them."""

    def __init__(self):
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def run(self, job: Job) -> Outcome:
        t0 = time.perf_counter()
        os.makedirs(job.log_dir, exist_ok=True)
        env = {**os.environ, **THREAD_ENV, PARENT_ENV: str(os.getpid())}
        with open(job.log_path, "a") as log:
            proc = subprocess.Popen(job.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
            with self.lock:
                self.procs.add(proc)
            try:
                proc.wait()
            finally:
                with self.lock:
                    self.procs.discard(proc)
        return Outcome(job, proc.returncode, time.perf_counter() - t0)

    def terminate(self) -> None:
        with self.lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)


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


def run_jobs(jobs: list[Job], workers: int, on_outcome: Callable[[Outcome], None]) -> list[Outcome]:
    """Run ``jobs``, ``workers`` at a time; ``on_outcome(outcome)`` in this thread as each one ends.
    On Ctrl-C (here or in ``on_outcome``): see the module docstring; raises ``PoolInterrupted``."""
    outcomes: list[Outcome] = []
    reported = set()

    def report(fut) -> None:
        reported.add(fut)
        outcomes.append(fut.result())
        on_outcome(outcomes[-1])

    running = _Workers()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, _TermAsInterrupt():
        futures = [pool.submit(running.run, job) for job in jobs]
        try:
            for fut in as_completed(futures):
                report(fut)
        except KeyboardInterrupt:
            not_started = sum(fut.cancel() for fut in futures)
            running.terminate()  # after Ctrl-C they also got SIGINT; either way each checkpoints and exits
            wait(futures)
            for fut in futures:
                if not fut.cancelled() and fut not in reported:
                    report(fut)
            raise PoolInterrupted(outcomes, not_started) from None
    return outcomes


def resumable(command: str, directory: str, body: Callable[[], int], stream) -> int:
    """``body()``; Ctrl-C anywhere in it (the pool, the summaries, the report) exits 130 with the command
    that finishes the work, since everything finished so far is on disk and kept."""
    try:
        return body()
    except KeyboardInterrupt as e:
        detail = f" ({e.summary()})" if isinstance(e, PoolInterrupted) else ""
        print(f"{command} interrupted{detail}; finished runs are kept. Finish it with: rlnn {command} --resume "
              f"{directory}", file=stream, flush=True)
        return 130


class SpecFile:
    """Mixin of a command's frozen spec dataclass: JSON (``FILE``) in the command's directory, read back by
    ``--resume``. Lists in the JSON become tuples (the dataclass is frozen); unknown keys are ignored."""

    FILE: ClassVar[str]
    KIND: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """The spec, every field checked against its type (ConfigError naming the first bad one)."""
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = coerce(data[f.name], hints[f.name], f.name)
            elif f.default is dataclasses.MISSING:
                raise ConfigError(f"no {f.name}")
        return cls(**values)

    def write(self, directory: str) -> None:
        write_json(os.path.join(directory, self.FILE), self.to_dict())

    @classmethod
    def read(cls, directory: str):
        path = os.path.join(directory, cls.FILE)
        if not os.path.isfile(path):
            raise ConfigError(f"{directory}: not a {cls.KIND} directory (no {cls.FILE})")
        try:
            return cls.from_dict(read_json(path))
        except ConfigError as e:
            raise ConfigError(f"{path}: not a {cls.KIND} plan: {e}") from None
