"""``rlnn compare``: several algorithms over several seeds, side by side, on one env or a suite of envs;
and ``rlnn report``, which remakes the report of either kind of directory.

Every (algo, seed) is an ordinary run, trained by its own ``rlnn train`` process on an executor
(``experiments.executor``: local processes, ``--workers`` at once, or ``--backend ray`` on a Ray instance
or cluster; Ctrl-C checkpoints every run), with every running run's progress shown meanwhile. All runs
sit under one ``runs/compare__{env}__{time}/`` with the plan in ``compare.json`` (``CompareSpec``), so
``tensorboard --logdir`` on it overlays them, ``rlnn compare --resume DIR`` finishes what is missing (on
either backend), and the report (``experiments.report``) is made from the runs' event files.

``--envs A,B,...`` is a suite (``SuiteSpec``, ``suite.json``): every (env, algo, seed) on one executor,
under ``runs/suite__{time}/`` with one ordinary compare directory per env (``{env}/``, its own compare.json
and report), and the suite's benchmark at the top (``experiments.benchmark``: benchmark.md, .csv and .png).
``rlnn compare --resume`` takes either kind of directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

from agents import ALGOS, UnknownAlgo
from agents.config import ConfigError, build
from agents.console import console_stream
from agents.logger import tensorboard_command
from agents.registry import check_run
from agents.rundir import RunDir, make_dirs
from envs import short_name
from experiments.benchmark import suite_report, threshold_of
from experiments.executor import (BACKENDS, Executor, Job, Outcome, RunProgress, SpecFile, job_for, open_executor,
                                  resumable)
from experiments.report import report

DEFAULT_ENV = "CartPole-v1"


@dataclass(frozen=True)
class CompareSpec(SpecFile):
    """What ``rlnn compare`` runs: every algorithm × seed on ``env`` (``sets``: the ``--set`` items)."""

    FILE = "compare.json"
    KIND = "compare"

    env: str
    algos: tuple[str, ...]
    seeds: tuple[int, ...]
    total_steps: int | None
    sets: tuple[str, ...]
    time: int

    def run_dir(self, parent: str, algo: str, seed: int) -> RunDir:
        return RunDir(os.path.join(parent, RunDir.name(self.env, algo, seed, self.time)))

    def jobs(self, parent: str) -> list[Job]:
        """The runs still to do: new runs, and resumes of runs that stopped before their total."""
        log_dir = os.path.join(parent, "logs")
        jobs = (job_for(self.run_dir(parent, algo, seed), algo=algo, env=self.env, seed=seed, log_dir=log_dir,
                        total_steps=self.total_steps, sets=self.sets)
                for algo in self.algos for seed in self.seeds)
        return [job for job in jobs if job is not None]

    def run_dirs(self, parent: str) -> list[RunDir]:
        return RunDir.find(parent)


@dataclass(frozen=True)
class SuiteSpec(SpecFile):
    """What ``rlnn compare --envs`` runs: the ``CompareSpec`` of every env in ``envs``, each in its own
    compare directory ``{parent}/{env}/`` (made by ``create``), all on one executor."""

    FILE = "suite.json"
    KIND = "suite"

    envs: tuple[str, ...]
    algos: tuple[str, ...]
    seeds: tuple[int, ...]
    total_steps: int | None
    sets: tuple[str, ...]
    time: int

    def compare(self, env: str) -> CompareSpec:
        return CompareSpec(env, self.algos, self.seeds, self.total_steps, self.sets, self.time)

    @staticmethod
    def env_dir(parent: str, env: str) -> str:
        return os.path.join(parent, env.replace("/", "-"))

    def create(self, parent: str) -> None:
        """suite.json, and each env's compare directory with its compare.json."""
        self.write(parent)
        for env in self.envs:
            os.makedirs(self.env_dir(parent, env), exist_ok=True)
            self.compare(env).write(self.env_dir(parent, env))

    def jobs(self, parent: str) -> list[Job]:
        return [job for env in self.envs for job in self.compare(env).jobs(self.env_dir(parent, env))]

    def run_dirs(self, parent: str) -> list[RunDir]:
        return [rd for env in self.envs for rd in RunDir.find(self.env_dir(parent, env))]


def read_spec(parent: str) -> CompareSpec | SuiteSpec:
    """The plan of a compare directory or of a suite directory."""
    return (SuiteSpec if os.path.isfile(os.path.join(parent, SuiteSpec.FILE)) else CompareSpec).read(parent)


def parse_names(text: str, flag: str) -> tuple[str, ...]:
    """``a,b, c`` -> ("a", "b", "c"), duplicates dropped; ConfigError when there is none."""
    names = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    if not names:
        raise ConfigError(f"{flag} {text!r}: expected a comma-separated list")
    return names


def parse_seeds(text: str) -> list[int]:
    """``5`` -> 0..4; ``0-9`` -> 0..9; ``1,4,7`` -> those (each once: a seed given twice is refused)."""
    seeds = _seeds(text)
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        which = f"seeds {', '.join(map(str, twice))} are" if len(twice) > 1 else f"seed {twice[0]} is"
        raise ConfigError(f"--seeds {text!r}: {which} given twice; each seed runs once")
    return seeds


def _seeds(text: str) -> list[int]:
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",")]
            if min(seeds) < 0:
                raise ValueError
            return seeds
        if "-" in text:
            lo, hi = (int(s) for s in text.split("-"))
            if hi < lo:
                raise ValueError
            return list(range(lo, hi + 1))
        n = int(text)
        if n < 1:
            raise ValueError
        return list(range(n))
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected a count (5), a range (0-9) or a list (1,4,7)") from None


def parse_workers(text: str) -> int | None:
    """A positive count, or None for ``auto`` (the executor's default: the cores, or the Ray cluster's CPUs)."""
    if text == "auto":
        return None
    try:
        n = int(text)
        if n < 1:
            raise ValueError
        return n
    except ValueError:
        raise ConfigError(f"--workers {text!r}: expected a positive number or auto") from None


def run_compare(parent: str, spec: CompareSpec | SuiteSpec, executor: Executor, progress_every: float | None = None,
                stream=None) -> int:
    """The missing runs of ``parent`` (a compare or, with a ``SuiteSpec``, a suite directory) on ``executor``,
    then the report(s); exit code 0, 1 (a run failed) or 130 (stopped)."""
    stream = console_stream(stream or sys.stdout)
    return resumable("compare", parent, lambda: _run_compare(parent, spec, executor, progress_every, stream), stream)


def _run_compare(parent: str, spec: CompareSpec | SuiteSpec, executor, progress_every: float | None, stream) -> int:
    jobs = spec.jobs(parent)
    print(f"compare: {len(jobs)} run(s) to do in {parent} on {executor.where}\n"
          f"watch: {tensorboard_command(parent)}", file=stream, flush=True)
    progress = RunProgress(stream, total=len(jobs), every=progress_every)

    def show(outcome: Outcome) -> None:
        job = outcome.job
        progress.ended(outcome)
        progress.print({"done": f"  done    {job.name} ({outcome.seconds:.1f} s)", "stopped": f"  stopped {job.name}",
                        "failed": f"  FAILED  {job.name} (exit {outcome.code}; see {job.log_path})"}[outcome.status])

    try:
        outcomes = executor.run(jobs, show, on_start=progress.started, on_tick=progress.tick)
    finally:
        progress.close()
    failed = sum(o.status == "failed" for o in outcomes)
    stopped = sum(o.status == "stopped" for o in outcomes)
    if failed or stopped:
        print(f"compare: {failed} failed, {stopped} stopped; the other runs are intact. "
              f"Finish with: rlnn compare --resume {parent}", file=stream, flush=True)
    if any(rd.read_result() is not None for rd in spec.run_dirs(parent)):
        if isinstance(spec, SuiteSpec):
            suite_report(parent, spec, stream=stream)
        else:
            report(parent, stream=stream)
    return 1 if failed else (130 if stopped else 0)


def _backend(args: argparse.Namespace) -> str:
    backend = args.backend or ("ray" if args.address else "local")
    if args.address and backend != "ray":
        raise ConfigError("--address is for --backend ray")
    return backend


def cmd_compare(args: argparse.Namespace) -> int:
    backend = _backend(args)
    workers = parse_workers(args.workers)
    if args.progress is not None and args.progress < 0:
        raise ConfigError(f"--progress {args.progress:g}: expected seconds >= 0")
    if args.resume:
        parent = os.path.abspath(args.resume)
        spec = read_spec(parent)

        def resume() -> int:
            with open_executor(backend, workers, args.address) as executor:
                return run_compare(parent, spec, executor, args.progress)

        return resumable("compare", parent, resume, console_stream(sys.stdout))    # Ctrl-C while Ray starts: the same line
    if args.env is not None and args.envs is not None:
        raise ConfigError("--env and --envs together: give one env (--env) or a suite of envs (--envs)")
    envs = parse_names(args.envs, "--envs") if args.envs is not None else (args.env or DEFAULT_ENV,)
    algos = parse_names(args.algos, "--algos")
    for algo in algos:
        if algo not in ALGOS:
            raise UnknownAlgo(f"unknown algorithm {algo!r} in --algos: choose from {', '.join(ALGOS)}")
    seeds = tuple(parse_seeds(args.seeds))
    for env in envs:  # check every env, config and (for a suite) threshold before creating anything
        for algo in algos:
            check_run(build(algo, env, None, args.set, {"total_steps": args.total_steps}))
        if args.envs is not None:
            threshold_of(env)
    # Ray is joined (or started) before anything is created: a missing Ray or a bad --address fails first
    with open_executor(backend, workers, args.address) as executor:
        if args.envs is None:
            parent, stamp = _new_parent(args.logdir, f"compare__{short_name(envs[0])}")
            spec = CompareSpec(envs[0], algos, seeds, args.total_steps, tuple(args.set), stamp)
            spec.write(parent)
        else:
            parent, stamp = _new_parent(args.logdir, "suite")
            spec = SuiteSpec(envs, algos, seeds, args.total_steps, tuple(args.set), stamp)
            spec.create(parent)
        return run_compare(parent, spec, executor, args.progress)


def _new_parent(logdir: str, prefix: str) -> tuple[str, int]:
    """A directory ``{prefix}__{time}`` no other compare uses: two started in the same second get different times."""
    stamp = int(time.time())
    make_dirs(logdir)
    while True:
        parent = os.path.abspath(os.path.join(logdir, f"{prefix}__{stamp}"))
        try:
            os.mkdir(parent)
            return parent, stamp
        except FileExistsError:
            stamp += 1


def cmd_report(args: argparse.Namespace) -> int:
    try:
        if os.path.isfile(os.path.join(args.dir, SuiteSpec.FILE)):   # a suite: every env's report + benchmark
            suite_report(args.dir, read_spec(args.dir))
        else:
            report(args.dir, threshold=args.threshold)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    return 0


def register(sub) -> None:
    c = sub.add_parser("compare", help="several algorithms over several seeds (on one env or a suite), with a report")
    c.add_argument("--env", help=f"one Gymnasium env id (default {DEFAULT_ENV})")
    c.add_argument("--envs", metavar="ENV,ENV,...", help="a suite: every env, one compare directory each, "
                   "and a benchmark over them (benchmark.md, .csv, .png); default: one env (--env)")
    c.add_argument("--algos", default="pg,dqn", help="comma-separated algorithms (default pg,dqn)")
    c.add_argument("--seeds", default="3", help="a count (5), a range (0-9) or a list (1,4,7) (default 3: seeds 0-2)")
    c.add_argument("--total-steps", type=int, help="budget per run (default: each preset's)")
    c.add_argument("--workers", default="auto", help="runs at once (default auto: the cores; with --backend ray "
                   "the cluster's CPUs)")
    c.add_argument("--backend", choices=BACKENDS, help="where the runs train: local processes (default) or Ray "
                   "(a local instance, or the cluster at --address)")
    c.add_argument("--address", help="Ray cluster to join (auto = the one `ray start` made here); implies "
                   "--backend ray (default: none, a local Ray instance)")
    c.add_argument("--progress", type=float, metavar="SECONDS", help="how often every running run's progress is "
                   "shown (default 1 on a terminal, where it is redrawn in place, else 30)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="e.g. dqn.lr=1e-3 (one algorithm), run.eval_every=2000 (all); repeatable (default: none)")
    c.add_argument("--logdir", default="runs", help="where the compare or suite directory is made (default runs)")
    c.add_argument("--resume", metavar="DIR", help="finish the missing runs of a compare or suite directory, on "
                   "the --backend given now (default: start a new comparison)")
    c.set_defaults(func=cmd_compare)

    r = sub.add_parser("report", help="summary table and plots of a compare (or suite) directory, from its event files")
    r.add_argument("dir", help="a compare or suite directory")
    r.add_argument("--threshold", type=float, help="return that counts as solved (default: the env's registry "
                   "threshold; a suite always uses each env's)")
    r.set_defaults(func=cmd_report)
