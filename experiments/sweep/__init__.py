"""``rlnn sweep``: hyperparameter search over configs × seeds, on local processes or a Ray cluster.

    rlnn sweep --algo dqn --env CartPole-v1 --space experiments/sweeps/cartpole_dqn.toml --trials 32 --seeds 3
               [--backend local|ray] [--address auto] [--max-concurrent N] [--early-stop asha]
               [--search random|optuna] [--search-seed 0] [--objective auc|final_eval]
    rlnn sweep --resume runs/sweep__CartPole-v1__dqn__1700000000

This module is the command (arguments, checks, the sweep directory); one job a module besides:
``space`` (the search-space file format), ``spec`` (sweep.json and a trial's config), ``trials`` (a trial
on disk and its summary), ``jobs`` (the trials as jobs of an ``experiments.executor``, as ``rlnn compare``
runs its runs), ``ray_backend`` (Ray Tune, for early stopping and Optuna), ``report`` (ranking, best
preset, plot).

Layout: ``runs/sweep__{env}__{algo}__{time}/`` holds ``sweep.json`` (``spec.SweepSpec``), ``space.toml``
(a copy of the space file), one ``trial_{k:03d}/`` per trial (see ``trials``), ``timings.jsonl`` (one
line per session) and, at the end, ``sweep.md``/``sweep.csv`` (configs ranked by the objective, mean and
95% bootstrap CI over seeds), ``best_{algo}.toml`` and ``sweep.png``. ``tensorboard --logdir SWEEP_DIR``
shows the trials in its HPARAMS tab (an experiment summary at the sweep root limits the columns to the
searched keys and the ``sweep/*`` metrics; per-seed runs appear as rows too).

Objective: the mean over seeds of the area under the greedy eval curve (``auc``, the mean eval return
over the budget; robust to a lucky last evaluation), or ``final_eval``. A trial with a diverged seed is
``failed`` and ranked last.

Backends: the trials' params are sampled up front with ``np.random.default_rng(search_seed)`` and every
(trial, seed) is an ``rlnn train`` process on the executor of ``--backend`` (``--max-concurrent`` at once):
``local`` (default; default: the number of cores) or ``ray`` (default: the cluster's CPUs), the same runs
either way. ``--early-stop asha`` and ``--search optuna`` run the trials through Ray Tune instead
(``ray_backend``): ASHA has to see each trial's evaluations as they come and stop it, and Optuna proposes
trials from finished ones, which is Tune's scheduling, not a list of jobs. ``--address auto`` joins a
running cluster, otherwise a local Ray instance starts with ``--max-concurrent`` (default: all) CPUs. On a
multi-node cluster install rlnn on every node and put the sweep directory on a shared filesystem mounted
at the same path everywhere to gather every run's event files in one place.

Ctrl-C (anywhere, the report included) leaves finished trials intact; ``rlnn sweep --resume DIR`` runs
exactly the missing (trial, seed) runs, continuing interrupted runs from their last checkpoint, then
writes the report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace

from agents import ALGOS
from agents.config import ConfigError
from agents.console import console_stream
from agents.registry import check_run
from agents.rundir import make_dirs
from experiments.compare import parse_seeds
from experiments.executor import BACKENDS, Executor, open_executor, resumable
from experiments.report import reward_threshold
from experiments.sweep.report import report_sweep
from experiments.sweep.space import Space, load_space
from experiments.sweep.spec import OBJECTIVES, SweepSpec, check_space, sample_trials, trial_config
from experiments.sweep.jobs import run_trials
from experiments.sweep.trials import Trial, existing_trials, write_experiment_summary


def uses_tune(spec: SweepSpec) -> bool:
    """Whether the sweep's trials run on Ray Tune (``ray_backend``) rather than as executor jobs (``jobs``)."""
    return spec.backend == "ray" and (spec.search == "optuna" or spec.early_stop == "asha")


def _tune_backend(search: str):
    """``experiments.sweep.ray_backend``, or a one-line error naming the missing package."""
    try:
        from experiments.sweep import ray_backend
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "ray":
            raise
        raise ConfigError("--backend ray needs Ray Tune: pip install 'rlnn[ray]'") from None
    if search == "optuna":
        ray_backend.require_optuna()
    return ray_backend


def _run_trials(sweep_dir: str, spec: SweepSpec, space: Space, executor: Executor, stream) -> int:
    if uses_tune(spec):
        return _tune_backend(spec.search).run_ray(sweep_dir, spec, space, executor.init_seconds or 0.0, stream)
    return run_trials(sweep_dir, spec, space, executor, stream)


def run_sweep(sweep_dir: str, spec: SweepSpec, space: Space, executor: Executor, stream=None) -> int:
    """The missing trials of ``sweep_dir`` on ``executor`` (``open_executor`` for ``spec.backend``; for Tune
    it only holds the Ray session), then the report; a line of timings.jsonl."""
    stream = console_stream(stream or sys.stdout)
    t0 = time.perf_counter()
    timing = {"trials_seconds": None}

    def body() -> int:
        code = _run_trials(sweep_dir, spec, space, executor, stream)
        timing["trials_seconds"] = time.perf_counter() - t0
        if any(t.record() for t in existing_trials(sweep_dir)):
            report_sweep(sweep_dir, spec, space, stream)
        return code

    code = resumable("sweep", sweep_dir, body, stream)
    with open(os.path.join(sweep_dir, "timings.jsonl"), "a") as f:
        f.write(json.dumps({"backend": spec.backend, "max_concurrent": spec.max_concurrent, "address": spec.address,
                            "ray_init_seconds": executor.init_seconds, **timing,
                            "total_seconds": time.perf_counter() - t0, "exit": code, "unix_time": time.time()}) + "\n")
    return code


def _on_backend(spec: SweepSpec, body) -> int:
    """``body(executor)`` with the executor of ``spec.backend`` (Ray joined or started before anything is
    written, so a bad --address fails first)."""
    if uses_tune(spec):
        _tune_backend(spec.search)      # Ray Tune or Optuna missing: the one-line error first
    with open_executor(spec.backend, spec.max_concurrent, spec.address) as executor:
        return body(executor)


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ConfigError(f"{name} {value}: must be at least 1")
    return value


def _threshold(env: str, given: float | None) -> float:
    if given is not None:
        return float(given)
    t = reward_threshold(env)
    if t is None:
        raise ConfigError(f"{env} has no registered reward threshold: pass --threshold")
    return float(t)


def _resume(args: argparse.Namespace) -> int:
    sweep_dir = os.path.abspath(args.resume)
    spec = SweepSpec.read(sweep_dir)
    space, _ = load_space(os.path.join(sweep_dir, "space.toml"), spec.algo)
    backend = args.backend or ("ray" if args.address else spec.backend)
    spec = replace(spec, backend=backend,
                   max_concurrent=_positive("--max-concurrent", args.max_concurrent) or spec.max_concurrent,
                   address=args.address or (spec.address if backend == "ray" else None))

    def session(executor: Executor) -> int:
        return run_sweep(sweep_dir, spec, space, executor)

    # Ctrl-C while Ray starts is a Ctrl-C in the sweep too: the same resume line
    return resumable("sweep", sweep_dir, lambda: _on_backend(spec, session), sys.stdout)


def _check_options(args: argparse.Namespace, backend: str) -> None:
    if backend == "local" and args.early_stop == "asha":
        raise ConfigError("--early-stop asha needs --backend ray (the local backend runs every trial to the end)")
    if backend == "local" and args.search == "optuna":
        raise ConfigError("--search optuna needs --backend ray")
    if args.address and backend != "ray":
        raise ConfigError("--address is for --backend ray")
    for name in ("trials", "max_concurrent", "total_steps"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))


def _new_spec(args: argparse.Namespace) -> tuple[SweepSpec, Space]:
    """The spec and space of a new sweep, every trial's config checked; nothing is written yet."""
    if not args.space:
        raise ConfigError("--space FILE is required (or --resume DIR)")
    space, algo = load_space(args.space, args.algo)
    backend = args.backend or ("ray" if args.address else "local")
    _check_options(args, backend)
    seeds = parse_seeds(args.seeds)
    spec = SweepSpec(algo=algo, env=args.env, seeds=tuple(seeds), trials=args.trials, total_steps=args.total_steps,
                     sets=tuple(args.set), search=args.search, search_seed=args.search_seed,
                     early_stop=args.early_stop, objective=args.objective,
                     threshold=_threshold(args.env, args.threshold), backend=backend, address=args.address,
                     max_concurrent=args.max_concurrent, space_file=os.path.abspath(args.space))
    check_run(trial_config(spec, space, {p.key: p.args[0] for p in space.params}))   # the env, before anything
    check_space(spec, space)
    return spec, space


def _create(args: argparse.Namespace, spec: SweepSpec, space: Space, sampled: list[dict]) -> tuple[str, SweepSpec]:
    """The sweep directory with sweep.json, space.toml, the HPARAMS summary and the sampled trials."""
    stamp = int(time.time())
    make_dirs(args.logdir)
    while True:  # two sweeps started in the same second get different directories
        sweep_dir = os.path.abspath(os.path.join(args.logdir, f"sweep__{spec.env.replace('/', '-')}__"
                                                              f"{spec.algo}__{stamp}"))
        try:
            os.makedirs(sweep_dir)
            break
        except FileExistsError:
            stamp += 1
    spec = replace(spec, time=stamp)
    shutil.copyfile(args.space, os.path.join(sweep_dir, "space.toml"))
    spec.write(sweep_dir)
    write_experiment_summary(sweep_dir, space, spec.objective)
    for k, params in enumerate(sampled):
        Trial(sweep_dir, k).write_params(params)
    return sweep_dir, spec


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.resume:
        return _resume(args)
    spec, space = _new_spec(args)
    sampled = sample_trials(spec, space) if spec.search == "random" else []

    def start(executor: Executor) -> int:
        sweep_dir, created = _create(args, spec, space, sampled)
        return run_sweep(sweep_dir, created, space, executor)

    return _on_backend(spec, start)


def register(sub) -> None:
    from experiments.cli import int_at_least

    s = sub.add_parser("sweep", help="hyperparameter search over configs × seeds (local processes or Ray)",
                       description="Sample configs from a TOML search space, train each on every seed, rank them. "
                                   "See experiments/sweep/space.py for the space file format.")
    s.add_argument("--algo", choices=list(ALGOS), help="algorithm (default: the space file's algo)")
    s.add_argument("--env", default="CartPole-v1", help="Gymnasium env id (default CartPole-v1)")
    s.add_argument("--space", metavar="FILE", help="TOML search space, e.g. experiments/sweeps/cartpole_dqn.toml "
                   "(required for a new sweep; default: none)")
    s.add_argument("--trials", type=int, default=16, help="number of configs to try (default 16)")
    s.add_argument("--seeds", default="3", help="seeds per config: a count (3), a range (0-9) or a list (1,4,7) "
                   "(default 3: seeds 0-2)")
    s.add_argument("--total-steps", type=int, help="budget per run (default: the preset's)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed override for every trial, e.g. run.eval_every=2000; repeatable (default: none)")
    s.add_argument("--backend", choices=BACKENDS, help="where the runs train: local processes (default) or Ray "
                   "(with --early-stop asha or --search optuna: Ray Tune)")
    s.add_argument("--address", help="Ray cluster to join (auto = the one `ray start` made here); implies "
                   "--backend ray (default: none, a local Ray instance)")
    s.add_argument("--max-concurrent", type=int, help="runs at once; with Ray Tune, trials at once (default: all "
                   "cores, or the Ray cluster's CPUs)")
    s.add_argument("--search", choices=("random", "optuna"), default="random",
                   help="random (default: sampled up front) or optuna (TPE via Ray Tune; needs --backend ray)")
    s.add_argument("--search-seed", type=int_at_least(0), default=0, help="seed of the search (default 0)")
    s.add_argument("--early-stop", choices=("none", "asha"), default="none",
                   help="asha: Ray Tune's ASHA scheduler stops weak trials early (default none)")
    s.add_argument("--objective", choices=tuple(OBJECTIVES), default="auc",
                   help="auc (default: mean eval return over the budget) or final_eval")
    s.add_argument("--threshold", type=float, help="return that counts as solved (default: the env's registry threshold)")
    s.add_argument("--logdir", default="runs", help="where the sweep directory is made (default runs)")
    s.add_argument("--resume", metavar="DIR", help="run what is missing in a sweep directory, then report "
                   "(default: start a new sweep)")
    s.set_defaults(func=cmd_sweep)
