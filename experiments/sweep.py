"""``rlnn sweep``: hyperparameter search over configs × seeds, on local processes or a Ray cluster.

    rlnn sweep --algo dqn --env CartPole-v1 --space experiments/sweeps/cartpole_dqn.toml --trials 32 --seeds 3
               [--backend local|ray] [--address auto] [--max-concurrent N] [--early-stop asha]
               [--search random|optuna] [--search-seed 0] [--objective auc|final_eval]
    rlnn sweep --resume runs/sweep__CartPole-v1__dqn__1700000000

Search space file (TOML)
------------------------
An optional ``algo`` and the tables ``[agent]`` (the algorithm's config dataclass, e.g. DQNConfig) and
``[run]`` (agents.loop.RunConfig). A value that is a one-key inline table is a distribution::

    algo = "dqn"
    [agent]
    lr = { loguniform = [1e-4, 3e-3] }           # log-uniform float in [low, high], low > 0
    gamma = { uniform = [0.95, 0.999] }           # uniform float in [low, high]
    batch_size = { choice = [32, 64, 128] }       # one of the values (any type the key accepts)
    hidden_sizes = { choice = [[64, 64], [128]] }
    target_update_interval = { int = [50, 1000] } # uniform integer, both ends inclusive
    buffer_size = { logint = [5_000, 100_000] }   # log-uniform integer, both ends inclusive, low > 0
    [run]
    eval_every = 2_000                            # a plain value is fixed for every trial

Every key is checked against the algorithm's config (name and type, e.g. ``uniform`` only for float keys)
and every range (low < high, log low > 0, non-empty choice) before anything starts; the config of every
range end and every choice is built and validated too. ``run.seed``, ``run.env_id`` and ``run.logdir``
cannot be searched (``--seeds``, ``--env`` and the sweep directory set them). Precedence for a trial,
lowest first: the (algo, env) preset, fixed values of the space file, ``--set``, the sampled values.

Layout
------
``runs/sweep__{env}__{algo}__{time}/`` holds ``sweep.json`` (the spec), ``space.toml`` (a copy of the
space file), and per trial ``trial_{k:03d}/`` with ``params.json`` (written before anything runs),
one ordinary run directory per seed, and once all its seeds finished, ``trial.json`` (per-seed and
aggregate numbers) and an event file with the trial's hyperparameters and ``sweep/objective``,
``sweep/final_eval``, ``sweep/steps_to_solve``, ``sweep/seconds_to_solve``: ``tensorboard --logdir
SWEEP_DIR`` shows the trials in its HPARAMS tab (an experiment summary at the sweep root limits the
columns to the searched keys and these metrics; per-seed runs appear as rows too, with their last
``eval/episodic_return``). At the end: ``sweep.md``/``sweep.csv`` (configs ranked by the objective,
mean and 95% bootstrap CI over seeds), ``best_{algo}.toml`` (the best config as a preset for
``rlnn train --config``) and ``sweep.png`` (each hyperparameter against the objective).

Objective: the mean over seeds of the area under the greedy eval curve (``auc``, the mean eval return
over the budget; robust to a lucky last evaluation), or ``final_eval``. A trial with a diverged seed
is ``failed`` and ranked last.

Backends
--------
``local`` (default): the trials' params are sampled up front with ``np.random.default_rng(search_seed)``;
every (trial, seed) is an ``rlnn train`` process run by the thread pool of ``rlnn compare``
(``--max-concurrent`` runs at once, default: the number of cores).

``ray``: the same trials through Ray Tune (``pip install 'rlnn[ray]'``); ``--address auto`` joins a
running cluster, otherwise a local Ray instance starts with ``--max-concurrent`` (default: all) CPUs.
A Tune trial trains its seeds one after the other in-process and reports the eval return at every
evaluation, so ``--early-stop asha`` (ASHA on the running mean eval return, time axis = env steps
over the trial's seeds) can stop bad trials early. ``--search optuna`` lets Optuna's TPE propose trials
(Ray's OptunaSearch) instead of the pre-sampled random ones. On a multi-node cluster install rlnn on
every node; put the sweep directory on a shared filesystem mounted at the same path everywhere to
gather every run's event files in one place (without it each node keeps the runs it trained, and the
driver still writes every trial's summary and the final report).

Ctrl-C leaves finished trials intact; ``rlnn sweep --resume DIR`` runs exactly the missing (trial, seed)
runs, continuing interrupted runs from their last checkpoint, then writes the report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
import typing
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents import ALGOS, UnknownAlgo, get_algo
from agents.loop import RunConfig, hparam_value, run_name, write_json
from experiments.compare import Job, job_for, parse_seeds, run_job, run_status
from experiments.config import ConfigError, type_name, build, coerce, read_toml

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int", "logint")
NOT_SEARCHABLE = {"seed": "--seeds", "env_id": "--env", "logdir": "the sweep directory"}
OBJECTIVES = {"auc": "mean greedy eval return over the budget (area under the eval curve / span)",
              "final_eval": "last greedy eval return"}
FINISHED = ("done", "failed", "early_stopped")  # trial statuses that --resume leaves alone
SUMMARY_METRICS = ("sweep/objective", "sweep/final_eval", "sweep/steps_to_solve", "sweep/seconds_to_solve",
                   "sweep/seeds_solved")
THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------------------------------
# The search space


@dataclass(frozen=True)
class Param:
    """One searched key: ``section.name`` drawn from ``kind`` with ``args`` ((low, high) or the choices)."""

    section: str
    name: str
    kind: str
    args: tuple
    tp: Any = field(compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def log(self) -> bool:
        return self.kind in ("loguniform", "logint")

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        lo, hi = self.args
        if self.kind == "int":
            return int(rng.integers(lo, hi + 1))
        if self.kind == "logint":
            return int(min(hi, math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi + 1))))))
        x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if self.kind == "loguniform" else rng.uniform(lo, hi)
        return float(min(hi, max(lo, float(f"{x:.4g}"))))  # 4 significant digits: readable, plenty fine

    def tune_domain(self):
        """The Ray Tune domain (choices as JSON strings so that Optuna accepts lists too)."""
        from ray import tune

        if self.kind == "choice":
            return tune.choice([json.dumps(v) for v in self.args])
        lo, hi = self.args
        return {"uniform": lambda: tune.uniform(lo, hi), "loguniform": lambda: tune.loguniform(lo, hi),
                "int": lambda: tune.randint(lo, hi + 1), "logint": lambda: tune.lograndint(lo, hi + 1)}[self.kind]()

    def from_tune(self, value: Any) -> Any:
        return json.loads(value) if self.kind == "choice" else (int(value) if self.kind in ("int", "logint")
                                                                else float(value))

    def to_tune(self, value: Any) -> Any:
        """A value as ``tune_domain`` draws it (the inverse of ``from_tune``)."""
        return json.dumps(value) if self.kind == "choice" else value

    def tb_domain(self):
        from tensorboard.plugins.hparams import summary_v2 as hp

        if self.kind == "choice":
            return hp.Discrete([hparam_value(v) for v in self.args])
        if self.kind in ("int", "logint"):
            return hp.IntInterval(int(self.args[0]), int(self.args[1]))
        return hp.RealInterval(float(self.args[0]), float(self.args[1]))


@dataclass
class Space:
    params: list[Param]
    fixed: dict[str, Any]
    source: str

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {p.key: p.sample(rng) for p in self.params}

    def by_key(self) -> dict[str, Param]:
        return {p.key: p for p in self.params}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _parse_param(section: str, name: str, spec: dict, tp: Any, source: str) -> Param:
    key = f"{section}.{name}"
    where = f"{source}: {key}"
    if len(spec) != 1:
        raise ConfigError(f"{where} = {spec}: a distribution is one key, one of {', '.join(DISTRIBUTIONS)} "
                          "(e.g. {{ loguniform = [1e-4, 1e-2] }})".replace("{{", "{").replace("}}", "}"))
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}: use one of {', '.join(DISTRIBUTIONS)}")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{where}: choice needs a non-empty list of values, e.g. {{ choice = [32, 64] }}")
        values = tuple(coerce(v, tp, key) for v in args)
        if len(set(map(json.dumps, values))) != len(values):
            raise ConfigError(f"{where}: choice lists a value twice")
        return Param(section, name, kind, values, tp)
    if not (isinstance(args, list) and len(args) == 2 and all(_is_number(a) for a in args)):
        raise ConfigError(f"{where}: {kind} needs [low, high] (two numbers), got {args!r}")
    lo, hi = args
    if not lo < hi:
        raise ConfigError(f"{where}: {kind} = [{lo}, {hi}]: low must be less than high")
    if kind in ("int", "logint"):
        if not all(isinstance(a, int) for a in args):
            raise ConfigError(f"{where}: {kind} = [{lo}, {hi}]: bounds must be integers")
        coerce(lo, tp, key)  # an int range on a str or list key fails here
    else:
        try:
            coerce(0.5, tp, key)
        except ConfigError:
            raise ConfigError(f"{where}: {kind} draws floats but {key} takes {type_name(tp)}: "
                              "use int, logint or choice") from None
        lo, hi = float(lo), float(hi)
    if kind in ("loguniform", "logint") and not lo > 0:
        raise ConfigError(f"{where}: {kind} = [{args[0]}, {args[1]}]: low must be > 0")
    return Param(section, name, kind, (lo, hi), tp)


def parse_space(doc: dict[str, Any], algo: str, source: str = "space") -> Space:
    """A Space from a parsed TOML document; ConfigError (one line) on any mistake."""
    config_cls, _ = get_algo(algo)
    tables = {"run": RunConfig, "agent": config_cls}
    for top in doc:
        if top not in ("algo", "run", "agent"):
            raise ConfigError(f"{source}: unknown top-level key {top!r}: allowed are algo, [agent], [run]")
    if "algo" in doc and doc["algo"] != algo:
        raise ConfigError(f"{source}: algo = {doc['algo']!r} but the sweep's algorithm is {algo!r}")
    params, fixed = [], {}
    for section, cls in tables.items():
        table = doc.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {section} must be a table ([{section}])")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        for name, value in table.items():
            key = f"{section}.{name}"
            if name not in names:
                raise ConfigError(f"{source}: unknown key {key}: allowed keys are {', '.join(names) or '(none)'}")
            if section == "run" and name in NOT_SEARCHABLE:
                raise ConfigError(f"{source}: {key} cannot be in a search space: {NOT_SEARCHABLE[name]} sets it")
            tp = hints[name]
            try:
                if isinstance(value, dict) and tp is not dict:
                    params.append(_parse_param(section, name, value, tp, source))
                else:
                    fixed[key] = coerce(value, tp, key)
            except ConfigError as e:
                msg = str(e)
                raise ConfigError(msg if msg.startswith(f"{source}: ") else f"{source}: {msg}") from None
    if not params:
        raise ConfigError(f"{source}: no distribution to search: write e.g. lr = {{ loguniform = [1e-4, 1e-2] }} "
                          "under [agent]")
    return Space(params, fixed, source)


def load_space(path: str, algo: str | None) -> tuple[Space, str]:
    """(space, algo) from a space file; ``algo`` None takes the file's ``algo``."""
    doc = read_toml(path)
    algo = algo or doc.get("algo")
    if algo is None:
        raise ConfigError(f"{path}: no algo: pass --algo or write algo = \"...\" in the file")
    if algo not in ALGOS:
        raise UnknownAlgo(f"unknown algorithm {algo!r}: choose one of {', '.join(ALGOS)}")
    return parse_space(doc, algo, path), algo


def toml_value(v: Any) -> str:
    """A value as TOML (and as the right-hand side of --set). None -> none (what --set understands)."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def set_items(values: dict[str, Any]) -> list[str]:
    return [f"{k}={toml_value(v)}" for k, v in values.items()]


def trial_sets(spec: dict, params: dict[str, Any]) -> list[str]:
    """--set items of a trial: the space's fixed values, the user's --set, the sampled params."""
    return list(spec["base_sets"]) + set_items(params)


def trial_config(spec: dict, params: dict[str, Any], seed: int | None = None):
    overrides = {"total_steps": spec.get("total_steps"), "seed": seed}
    return build(spec["algo"], spec["env"], None, trial_sets(spec, params), overrides)[:2]


def check_user_sets(space: Space, sets: list[str], algo: str) -> None:
    """A --set of a searched key would be silently overridden: refuse it."""
    searched = {p.key for p in space.params}
    for item in sets:
        key = item.split("=", 1)[0].strip()
        section, _, name = key.rpartition(".")
        candidates = {f"run.{name}", f"agent.{name}"} if section == "" else (
            {f"agent.{name}"} if section == algo else {key})
        clash = searched & candidates
        if clash:
            raise ConfigError(f"--set {key}: {clash.pop()} is searched by the space file; drop one of them")


def check_space(space: Space, spec: dict) -> None:
    """Build and validate the config of every range end and every choice (cross-key checks included)."""
    base = {p.key: p.args[0] for p in space.params}
    trial_config(spec, base)
    for p in space.params:
        for value in p.args:
            try:
                trial_config(spec, {**base, p.key: value})
            except ConfigError as e:
                raise ConfigError(f"{space.source}: {p.key} = {toml_value(value)} is not a valid config: {e}") from None


# ---------------------------------------------------------------------------------------------------
# Directories and per-trial bookkeeping


def trial_dir(sweep_dir: str, k: int) -> str:
    return os.path.join(sweep_dir, f"trial_{k:03d}")


def run_dir_for(tdir: str, spec: dict, seed: int) -> str:
    return os.path.join(tdir, run_name(spec["env"], spec["algo"], seed, spec["time"]))


def _first_config(tdir: str, spec: dict) -> dict | None:
    """The config.json of the trial's first seed, if that run started."""
    path = os.path.join(run_dir_for(tdir, spec, spec["seeds"][0]), "config.json")
    return _read_json(path) if os.path.exists(path) else None


def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def _jsonable(x: Any) -> Any:
    """NaN -> None, recursively (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    return x


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def trial_params(sweep_dir: str, k: int) -> dict[str, Any] | None:
    path = os.path.join(trial_dir(sweep_dir, k), "params.json")
    return _read_json(path)["params"] if os.path.exists(path) else None


def write_params(sweep_dir: str, k: int, params: dict[str, Any]) -> None:
    tdir = trial_dir(sweep_dir, k)
    os.makedirs(tdir, exist_ok=True)
    write_json(os.path.join(tdir, "params.json"), _jsonable({"trial": k, "params": params}))


def trial_record(sweep_dir: str, k: int) -> dict | None:
    path = os.path.join(trial_dir(sweep_dir, k), "trial.json")
    return _read_json(path) if os.path.exists(path) else None


def existing_trials(sweep_dir: str) -> list[int]:
    return sorted(int(os.path.basename(d)[6:]) for d in glob.glob(os.path.join(sweep_dir, "trial_*"))
                  if os.path.basename(d)[6:].isdigit() and os.path.exists(os.path.join(d, "params.json")))


def unfinished_trials(sweep_dir: str) -> list[int]:
    return [k for k in existing_trials(sweep_dir)
            if (trial_record(sweep_dir, k) or {}).get("status") not in FINISHED]


def seed_jobs(tdir: str, spec: dict) -> list[Job]:
    """The runs of a trial still to do (like ``compare.plan``): new runs and resumes of stopped ones."""
    jobs = (job_for(spec["algo"], seed, run_dir_for(tdir, spec, seed)) for seed in spec["seeds"])
    return [job for job in jobs if job is not None]


def seed_summary(run_dir: str, seed: int, threshold: float, status: str | None = None) -> dict:
    """One seed's numbers from its event files (``experiments.report.summarize_run``)."""
    from experiments.report import summarize_run

    if status is None:
        st = run_status(run_dir)
        status = "done" if st is not None and st["status"] in ("done", "target_reached") else "missing"
    out = {"seed": seed, "run": os.path.basename(run_dir), "status": status}
    if not os.path.exists(os.path.join(run_dir, "config.json")):
        return out
    s = summarize_run(run_dir, threshold)
    out.update(auc=s.auc, final_eval=s.final_eval, solved=s.solved, steps_to_solve=s.steps_to_solve,
               seconds_to_solve=s.seconds_to_solve, sps=s.sps, evals=[float(v) for v in s.eval.values])
    return out


def aggregate_trial(k: int, params: dict, seeds: list[dict], objective: str, config: dict | None) -> dict:
    """A trial's record (trial.json): per-seed numbers and their mean (95% bootstrap CI over seeds)."""
    from experiments.report import bootstrap_ci

    ok = all(s["status"] == "done" for s in seeds) and len(seeds) > 0
    rec: dict[str, Any] = {"trial": k, "params": params, "status": "done" if ok else "failed",
                           "objective_name": objective, "seeds": [{k2: v for k2, v in s.items() if k2 != "evals"}
                                                                   for s in seeds]}
    if ok:
        values = [_num(s.get(objective)) for s in seeds]
        lo, hi = bootstrap_ci(values)
        solved = [s for s in seeds if s.get("solved")]
        rec.update(objective=float(np.mean(values)), objective_ci_low=lo, objective_ci_high=hi,
                   final_eval=float(np.mean([_num(s.get("final_eval")) for s in seeds])),
                   steps_to_solve=float(np.mean([s["steps_to_solve"] for s in solved])) if solved else math.nan,
                   seconds_to_solve=float(np.mean([s["seconds_to_solve"] for s in solved])) if solved else math.nan,
                   seeds_solved=len(solved), num_seeds=len(seeds))
    else:
        rec.update(objective=math.nan, objective_ci_low=math.nan, objective_ci_high=math.nan, final_eval=math.nan,
                   steps_to_solve=math.nan, seconds_to_solve=math.nan,
                   seeds_solved=sum(bool(s.get("solved")) for s in seeds), num_seeds=len(seeds))
    if config is not None:
        rec["config"] = config
    return rec


def summarize_trial(sweep_dir: str, k: int, spec: dict, failed: dict[int, str] | None = None) -> dict:
    """Read a finished trial's runs back from their event files."""
    tdir, params = trial_dir(sweep_dir, k), trial_params(sweep_dir, k)
    failed = failed or {}
    seeds = [seed_summary(run_dir_for(tdir, spec, s), s, spec["threshold"], failed.get(s)) for s in spec["seeds"]]
    return aggregate_trial(k, params, seeds, spec["objective"], _first_config(tdir, spec))


def finish_trial(sweep_dir: str, rec: dict) -> None:
    """trial.json and the trial's TensorBoard event file (HPARAMS tab: its params and metrics)."""
    from agents.logger import TensorBoardSink

    tdir = trial_dir(sweep_dir, rec["trial"])
    os.makedirs(tdir, exist_ok=True)
    for old in glob.glob(os.path.join(tdir, "events.out.tfevents.*")):  # a re-finished trial: one session only
        os.remove(old)
    sink = TensorBoardSink(tdir)
    sink.hparams({key: hparam_value(v) for key, v in rec["params"].items()}, start_time=time.time())
    for tag in SUMMARY_METRICS:
        value = rec.get(tag.split("/", 1)[1])
        if value is not None and math.isfinite(float(value)):
            sink.scalar(tag, float(value), 0)
    sink.close()
    write_json(os.path.join(tdir, "trial.json"), _jsonable(rec))


def write_experiment_summary(sweep_dir: str, space: Space, objective: str) -> None:
    """The HPARAMS tab's columns: the searched keys and the sweep metrics (an event file at the root)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    hparams = [hp.HParam(p.key, p.tb_domain()) for p in space.params]
    metrics = [hp.Metric("sweep/objective", display_name=f"objective ({objective}), mean over seeds"),
               hp.Metric("sweep/final_eval", display_name="final eval, mean over seeds"),
               hp.Metric("sweep/steps_to_solve", display_name="steps to solve, mean over solved seeds"),
               hp.Metric("sweep/seconds_to_solve", display_name="seconds to solve, mean over solved seeds"),
               hp.Metric("sweep/seeds_solved", display_name="seeds solved"),
               hp.Metric("eval/episodic_return", display_name="last eval return (per-seed runs)")]
    writer = EventFileWriter(sweep_dir)
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=0,
                                     summary=hp.hparams_config_pb(hparams, metrics, time_created_secs=time.time())))
    writer.close()


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.', 1)[1]}={_short(v)}" for k, v in params.items())


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (list, dict, str)) else str(v)


def _trial_line(rec: dict, secs: float | None = None) -> str:
    name = f"trial_{rec['trial']:03d}"
    extra = f" ({secs:.1f} s)" if secs is not None else ""
    if rec["status"] == "failed":
        bad = [s for s in rec["seeds"] if s["status"] != "done"] or [{"seed": "?", "status": "failed"}]
        return f"  FAILED  {name}: seed {bad[0]['seed']} {bad[0]['status']}{extra}  [{_params_text(rec['params'])}]"
    label = "stopped " if rec["status"] == "early_stopped" else "done    "
    return (f"  {label}{name}  {rec['objective_name']} {_short(_num(rec.get('objective')))}{extra}  "
            f"[{_params_text(rec['params'])}]")


# ---------------------------------------------------------------------------------------------------
# Local backend: the process pool of `rlnn compare`


def _diverged(log_path: str) -> bool:
    """`rlnn train` exits 1 for a diverged run and for a crash; only the former prints `rlnn: error:`."""
    try:
        with open(log_path, errors="replace") as f:
            return "rlnn: error:" in f.read()[-4000:]
    except OSError:
        return False


def run_local(sweep_dir: str, spec: dict, workers: int, stream) -> int:
    todo = unfinished_trials(sweep_dir)
    plans = {k: seed_jobs(trial_dir(sweep_dir, k), spec) for k in todo}
    total = sum(len(v) for v in plans.values())
    print(f"sweep: {len(todo)} trial(s), {total} run(s) to do in {sweep_dir} with {workers} worker(s)\n"
          f"watch: tensorboard --logdir {sweep_dir}", file=stream, flush=True)
    remaining = {k: len(jobs) for k, jobs in plans.items()}
    failed: dict[int, dict[int, str]] = {k: {} for k in todo}
    broken: set[int] = set()  # trials with an interrupted or crashed run: left for --resume
    started = {k: time.perf_counter() for k in todo}
    for k in todo:
        if remaining[k] == 0:  # every seed finished, the summary was not written yet
            _finish_local(sweep_dir, k, spec, failed[k], None, stream)
    pool = ThreadPoolExecutor(max_workers=workers)
    futures = {}
    for k in todo:
        tdir = trial_dir(sweep_dir, k)
        run_spec = {"env": spec["env"], "total_steps": spec.get("total_steps"),
                    "sets": trial_sets(spec, trial_params(sweep_dir, k))}
        log_dir = os.path.join(tdir, "logs")
        os.makedirs(log_dir, exist_ok=True)
        for job in plans[k]:
            futures[pool.submit(run_job, job, run_spec, log_dir)] = (k, log_dir)
    try:
        for fut in as_completed(futures):
            k, log_dir = futures[fut]
            job, code, secs = fut.result()
            log = os.path.join(log_dir, os.path.basename(job.run_dir) + ".log")
            if code == 130 or code == -signal.SIGINT:
                broken.add(k)
            elif code == 1 and _diverged(log):
                failed[k][job.seed] = "diverged"
            elif code != 0:
                broken.add(k)
                print(f"  FAILED  run {os.path.relpath(job.run_dir, sweep_dir)} (exit {code}; see {log}); "
                      "it is retried by --resume", file=stream, flush=True)
            remaining[k] -= 1
            if remaining[k] == 0 and k not in broken:
                _finish_local(sweep_dir, k, spec, failed[k], time.perf_counter() - started[k], stream)
    except KeyboardInterrupt:
        # The workers got the same SIGINT (one process group): each checkpoints and exits.
        for fut in futures:
            fut.cancel()
        pool.shutdown(wait=True)
        print(f"sweep interrupted; finished trials are kept. Finish it with: rlnn sweep --resume {sweep_dir}",
              file=stream, flush=True)
        return 130
    pool.shutdown(wait=True)
    if broken:
        print(f"sweep: {len(broken)} trial(s) unfinished (a run crashed or stopped); finished trials are kept. "
              f"Finish with: rlnn sweep --resume {sweep_dir}", file=stream, flush=True)
        return 1
    return 0


def _finish_local(sweep_dir, k, spec, failed, secs, stream) -> None:
    rec = summarize_trial(sweep_dir, k, spec, failed)
    finish_trial(sweep_dir, rec)
    print(_trial_line(rec, secs), file=stream, flush=True)


# ---------------------------------------------------------------------------------------------------
# Ray backend


@contextlib.contextmanager
def _environ(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _budget(spec: dict, space: Space) -> int:
    """Env steps of one seed (the upper bound when total_steps is searched)."""
    p = space.by_key().get("run.total_steps")
    if p is not None:
        return int(max(p.args))
    run_cfg, _ = trial_config(spec, {})
    return run_cfg.total_steps


def _ray_trial(config: dict, sweep_dir: str, spec: dict, budget: int) -> None:
    """One Ray Tune trial: its seeds one after the other, in-process, reporting every evaluation."""
    from ray import tune

    from agents.loop import TrainingDiverged, train
    from experiments import config as cfgmod

    k, params = int(config["trial"]), config["params"]
    tdir = trial_dir(sweep_dir, k)
    if trial_params(sweep_dir, k) is None:  # a node that does not share the sweep directory
        write_params(sweep_dir, k, params)
    evals: list[float] = []
    seeds: list[dict] = []
    for i, seed in enumerate(spec["seeds"]):
        run_dir = run_dir_for(tdir, spec, seed)
        jobs = seed_jobs(tdir, {**spec, "seeds": [seed]})
        if not jobs:
            s = seed_summary(run_dir, seed, spec["threshold"])
            evals += s.get("evals", [])
            seeds.append(s)
            continue
        offset = i * budget

        def report(record, seed=seed, offset=offset):
            evals.append(record.mean)
            tune.report({"env_steps": offset + record.step, "eval_return": record.mean,
                         "objective": float(np.mean(evals)), "seed": seed, "trial": k})

        def on_iteration(info, report=report):
            if info["eval"] is not None:
                report(info["eval"])

        status = None
        try:
            if jobs[0].resume:
                saved = _read_json(os.path.join(run_dir, "config.json"))
                run_cfg, agent_cfg = cfgmod.from_saved(spec["algo"], saved)
                train(spec["algo"], run_cfg, agent_cfg, run_dir=run_dir, resume=True, console=False,
                      callback=on_iteration)
            else:
                run_cfg, agent_cfg = trial_config(spec, params, seed)
                train(spec["algo"], run_cfg, agent_cfg, run_dir=run_dir, console=False, callback=on_iteration)
        except TrainingDiverged:
            status = "diverged"
        seeds.append(seed_summary(run_dir, seed, spec["threshold"], status))
        if status is not None:
            break  # the trial has failed: its other seeds would not change that
    rec = aggregate_trial(k, params, seeds, spec["objective"], _first_config(tdir, spec))
    if rec["status"] == "failed":
        rec["seeds"] += [{"seed": s, "status": "skipped"} for s in spec["seeds"][len(seeds):]]
    tune.report({"env_steps": budget * len(spec["seeds"]), "objective": _num(rec["objective"]), "trial": k,
                 "sweep_final": 1, "sweep_record": json.dumps(_jsonable(rec))})


def _make_searcher(sweep_dir: str, spec: dict, space: Space, pending: list[int], new: int):
    """A Tune Searcher handing out our trials: first the existing unfinished ones (their params.json), then
    (optuna) ``new`` trials proposed by Optuna, numbered here on the driver so every trial has one directory."""
    from ray.tune.search import Searcher

    inner = None
    if spec["search"] == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        domains = OptunaSearch.convert_search_space({p.key: p.tune_domain() for p in space.params})
        inner = OptunaSearch(space=domains, metric="objective", mode="max", seed=spec["search_seed"])
        by_key = space.by_key()
        for k in existing_trials(sweep_dir):  # warm start with what earlier sessions found
            rec = trial_record(sweep_dir, k)
            if rec is not None and rec.get("status") in FINISHED:
                point = {key: by_key[key].to_tune(v) for key, v in rec["params"].items()}
                value = rec.get("objective")
                inner.add_evaluated_point(point, value if value is not None else math.nan,
                                          error=value is None, pruned=rec["status"] == "early_stopped")

    class TrialSearcher(Searcher):
        def __init__(self):
            super().__init__()
            self.pending, self.new, self.inner = list(pending), new, inner
            self.proposed: set[str] = set()
            self.params: dict[str, dict] = {}
            self.next_index = max(existing_trials(sweep_dir), default=-1) + 1

        def set_search_properties(self, metric, mode, config, **spec_):
            self._metric, self._mode = metric, mode
            return True

        def suggest(self, trial_id: str):
            if self.pending:
                k = self.pending.pop(0)
                params = trial_params(sweep_dir, k)
            elif self.inner is not None and self.new > 0:
                raw = self.inner.suggest(trial_id)
                if raw is None:
                    return None
                params = {p.key: p.from_tune(raw[p.key]) for p in space.params}
                k, self.next_index, self.new = self.next_index, self.next_index + 1, self.new - 1
                write_params(sweep_dir, k, params)
                self.proposed.add(trial_id)
            else:
                return Searcher.FINISHED
            self.params[trial_id] = params
            return {"trial": k, "params": params}

        def on_trial_result(self, trial_id, result):
            if trial_id in self.proposed:
                self.inner.on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id, result=None, error=False):
            if trial_id in self.proposed:
                self.inner.on_trial_complete(trial_id, result=result, error=error)
            elif self.inner is not None and trial_id in self.params and result and "objective" in result:
                params = self.params[trial_id]
                point = {p.key: p.to_tune(params[p.key]) for p in space.params}
                self.inner.add_evaluated_point(point, result["objective"])

    return TrialSearcher()


_RAY_INIT_SECONDS = [0.0]


def _require_ray(search: str) -> None:
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise ConfigError("--backend ray needs Ray Tune: pip install 'rlnn[ray]'") from None
    if search == "optuna":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise ConfigError("--search optuna needs Optuna: pip install 'rlnn[ray]'") from None


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None):
    """Join the cluster at ``address`` or start a local Ray instance with ``num_cpus`` CPUs (default: all
    cores), and disconnect/stop it at the end; a no-op when Ray is already initialized (e.g. by a caller)."""
    import ray

    if ray.is_initialized():
        yield
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
        # address="local": always a new instance, never a cluster found on this machine or in RAY_ADDRESS
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **common)
    _RAY_INIT_SECONDS[0] = time.perf_counter() - t0
    try:
        yield
    finally:
        ray.shutdown()


def run_ray(sweep_dir: str, spec: dict, space: Space, max_concurrent: int | None, address: str | None,
            stream) -> int:
    """The missing trials through Ray Tune; Ray must be initialized (``ray_session``)."""
    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    pending = unfinished_trials(sweep_dir)
    new = spec["trials"] - len(existing_trials(sweep_dir)) if spec["search"] == "optuna" else 0
    if not pending and new <= 0:
        print(f"sweep: 0 trial(s) to do in {sweep_dir}", file=stream, flush=True)
        return 0
    budget = _budget(spec, space)
    max_t = budget * len(spec["seeds"])

    cpus = int(ray.cluster_resources().get("CPU", 0))
    where = f"cluster {address}, joined" if address else "local instance, started"
    print(f"sweep: {len(pending) + max(0, new)} trial(s) to do in {sweep_dir} on Ray "
          f"({where} in {_RAY_INIT_SECONDS[0]:.1f} s, {cpus} CPU(s))\n"
          f"watch: tensorboard --logdir {sweep_dir}", file=stream, flush=True)

    stopped_early: set[str] = set()
    scheduler = None
    if spec["early_stop"] == "asha":
        class ASHA(ASHAScheduler):
            def on_trial_result(self, controller, trial, result):
                decision = super().on_trial_result(controller, trial, result)
                if decision == TrialScheduler.STOP and not result.get("sweep_final"):
                    stopped_early.add(trial.trial_id)
                return decision

        eval_every = trial_config(spec, {})[0].eval_every
        grace = min(max_t, max(eval_every, max_t // 9))
        # stop_last_trials=False: a trial that reaches max_t is not "stopped" before its final report.
        scheduler = ASHA(time_attr="env_steps", max_t=max_t, grace_period=grace, reduction_factor=3,
                         stop_last_trials=False)

    starts: dict[str, float] = {}
    errors: list[int] = []

    class Progress(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            starts[trial.trial_id] = time.perf_counter()

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            k = int(trial.config["trial"])
            if result.get("sweep_final"):
                rec = json.loads(result["sweep_record"])
            elif trial.trial_id in stopped_early:
                rec = {"trial": k, "params": trial.config["params"], "status": "early_stopped",
                       "objective_name": spec["objective"], "objective": result.get("objective"),
                       "objective_ci_low": None, "objective_ci_high": None, "final_eval": None,
                       "steps_to_solve": None, "seconds_to_solve": None, "seeds_solved": None,
                       "num_seeds": len(spec["seeds"]), "stopped_at_env_steps": result.get("env_steps"), "seeds": []}
            else:
                return
            finish_trial(sweep_dir, rec)
            secs = time.perf_counter() - starts.get(trial.trial_id, time.perf_counter())
            print(_trial_line(rec, secs), file=sys.stdout, flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            errors.append(int(trial.config["trial"]))
            print(f"  FAILED  trial_{int(trial.config['trial']):03d} (Ray error; see {trial.error_file or 'the Ray logs'}); "
                  "it is retried by --resume", file=sys.stdout, flush=True)

    trainable = tune.with_resources(tune.with_parameters(_ray_trial, sweep_dir=sweep_dir, spec=spec, budget=budget),
                                    {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric="objective", mode="max", num_samples=len(pending) + max(0, new),
                                    search_alg=_make_searcher(sweep_dir, spec, space, pending, max(0, new)),
                                    scheduler=scheduler, max_concurrent_trials=max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=f"tune_{int(time.time())}", storage_path=os.path.join(sweep_dir, "ray"),
                                  verbose=0, callbacks=[Progress(), JsonLoggerCallback(), CSVLoggerCallback()]),
    )
    quiet = logging.getLogger("ray.tune")
    old_level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # Tune's own "trials did not complete"/"resume with Tuner.restore" lines
    try:
        # No TensorBoardX logger from Tune (its event files would add a second set of sessions to HPARAMS);
        # the legacy output engine, silent at verbose=0 (the new one always prints a banner).
        with _environ(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", RAY_AIR_NEW_OUTPUT="0"):
            tuner.fit()
    finally:
        quiet.setLevel(old_level)
    missing = unfinished_trials(sweep_dir)
    short = spec["search"] == "optuna" and len(existing_trials(sweep_dir)) < spec["trials"]
    if errors:
        print(f"sweep: {len(errors)} trial(s) failed in Ray; the other trials are intact. "
              f"Retry them with: rlnn sweep --resume {sweep_dir}", file=stream, flush=True)
        return 1
    if missing or short:
        print(f"sweep: {len(missing)} trial(s) unfinished; finished trials are kept. "
              f"Finish it with: rlnn sweep --resume {sweep_dir}", file=stream, flush=True)
        return 130
    return 0


# ---------------------------------------------------------------------------------------------------
# The report: sweep.md, sweep.csv, best_{algo}.toml, sweep.png


STATUS_ORDER = {"done": 0, "early_stopped": 1, "failed": 2}


def ranked(records: list[dict]) -> list[dict]:
    def key(r):
        obj = _num(r.get("objective"))
        return (STATUS_ORDER.get(r["status"], 3), math.isnan(obj), -obj if not math.isnan(obj) else 0, r["trial"])

    return sorted(records, key=key)


CSV_TAIL = ("objective_mean", "objective_ci_low", "objective_ci_high", "final_eval_mean", "steps_to_solve_mean",
            "seconds_to_solve_mean", "seeds_solved", "seeds")


def _csv_rows(records: list[dict], keys: list[str]) -> list[dict]:
    rows = []
    for rank, r in enumerate(records, 1):
        row = {"rank": rank, "trial": r["trial"], "status": r["status"]}
        row.update({k: hparam_value(r["params"].get(k)) for k in keys})
        row.update(objective_mean=r.get("objective"), objective_ci_low=r.get("objective_ci_low"),
                   objective_ci_high=r.get("objective_ci_high"), final_eval_mean=r.get("final_eval"),
                   steps_to_solve_mean=r.get("steps_to_solve"), seconds_to_solve_mean=r.get("seconds_to_solve"),
                   seeds_solved=r.get("seeds_solved"), seeds=r.get("num_seeds"))
        rows.append({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()})
    return rows


def _fmt(x: Any, digits: int = 1) -> str:
    x = _num(x)
    return "–" if math.isnan(x) else f"{x:,.{digits}f}"


def sweep_markdown(spec: dict, records: list[dict], keys: list[str], best: dict | None, best_file: str | None) -> str:
    seeds = ", ".join(map(str, spec["seeds"]))
    lines = [f"# Sweep: {spec['algo']} on {spec['env']}", "",
             f"{len(records)} of {spec['trials']} trials × {len(spec['seeds'])} seed(s) ({seeds}); search "
             f"{spec['search']} (search seed {spec['search_seed']}), early stop {spec['early_stop']}, backend "
             f"{spec.get('backend', 'local')}.", "",
             f"Objective `{spec['objective']}`: {OBJECTIVES[spec['objective']]}, mean over seeds with a 95% "
             f"bootstrap CI. Solved = first greedy evaluation ≥ {spec['threshold']:g}; steps/seconds to solve are "
             "means over the solved seeds.", "",
             "| rank | trial | status | " + " | ".join(keys) + " | objective [95% CI] | final eval | steps to solve "
             "| seconds to solve | solved |",
             "|" + "---|" * (len(keys) + 8)]
    for rank, r in enumerate(records, 1):
        obj = f"{_fmt(r.get('objective'))} [{_fmt(r.get('objective_ci_low'))}, {_fmt(r.get('objective_ci_high'))}]"
        if r["status"] == "early_stopped":
            obj = f"{_fmt(r.get('objective'))} (partial, at {int(_num(r.get('stopped_at_env_steps')) or 0):,} steps)"
        solved = f"{r['seeds_solved']}/{r['num_seeds']}" if r.get("seeds_solved") is not None else "–"
        lines.append(f"| {rank} | {r['trial']:03d} | {r['status']} | "
                     + " | ".join(_short(r["params"].get(k)) for k in keys)
                     + f" | {obj} | {_fmt(r.get('final_eval'))} | {_fmt(r.get('steps_to_solve'), 0)} "
                     f"| {_fmt(r.get('seconds_to_solve'))} | {solved} |")
    lines.append("")
    if best is not None:
        lines += [f"Best: trial {best['trial']:03d} ({_params_text(best['params'])}), written as a preset: "
                  f"`rlnn train --config {best_file}`.", ""]
    else:
        lines += ["No trial finished all its seeds: no best config.", ""]
    return "\n".join(lines)


def best_preset_text(spec: dict, rec: dict, sweep_dir: str) -> str:
    config = rec.get("config")
    if config is None:  # the runs live on another node: rebuild the config
        run_cfg, agent_cfg = trial_config(spec, rec["params"])
        config = {"run": dataclasses.asdict(run_cfg), "agent": dataclasses.asdict(agent_cfg)}
    lines = [f"# The best config of `rlnn sweep` {sweep_dir} (trial {rec['trial']:03d}):",
             f"# {spec['objective']} {_fmt(rec.get('objective'))} [95% CI {_fmt(rec.get('objective_ci_low'))}, "
             f"{_fmt(rec.get('objective_ci_high'))}] over seeds {', '.join(map(str, spec['seeds']))}.",
             f"# Searched: {_params_text(rec['params'])}",
             "# Use: rlnn train --config THIS_FILE [--seed N] [--total-steps N]",
             f"algo = {toml_value(spec['algo'])}", ""]
    for section, skip in (("run", ("seed", "logdir")), ("agent", ())):
        lines.append(f"[{section}]")
        for k, v in config[section].items():
            if k in skip:
                continue
            if v is None:
                lines.append(f"# {k} is unset (none)")
            else:
                lines.append(f"{k} = {toml_value(v)}")
        lines.append("")
    return "\n".join(lines)


def _label(v: Any) -> str:
    """A choice as the plot's x axis names it: strings as they are, anything else as JSON."""
    return v if isinstance(v, str) else json.dumps(v)


def plot_sweep(records: list[dict], space: Space, objective: str, path: str, best: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = space.params
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    colors = {"done": "C0", "early_stopped": "C1", "failed": "C3"}
    for ax, p in zip(axes.ravel(), params):
        labels = [_label(c) for c in p.args] if p.kind == "choice" else None
        for status, color in colors.items():
            group = [r for r in records if r["status"] == status and r.get("objective") is not None
                     and not math.isnan(_num(r.get("objective")))]
            if not group:
                continue
            if p.kind == "choice":
                xs = np.array([labels.index(_label(r["params"][p.key])) for r in group], dtype=float)
                xs = xs + np.linspace(-0.08, 0.08, len(xs)) if len(xs) > 1 else xs
            else:
                xs = np.array([float(r["params"][p.key]) for r in group])
            ys = np.array([_num(r["objective"]) for r in group])
            lo = np.array([_num(r.get("objective_ci_low")) for r in group])
            hi = np.array([_num(r.get("objective_ci_high")) for r in group])
            yerr = np.vstack([np.nan_to_num(ys - lo), np.nan_to_num(hi - ys)])
            ax.errorbar(xs, ys, yerr=yerr, fmt="o", color=color, alpha=0.8, capsize=2, label=status.replace("_", " "))
        if best is not None:
            v = best["params"][p.key]
            if p.kind == "choice":
                bx = labels.index(_label(v))
            else:
                bx = float(v)
            ax.plot([bx], [_num(best["objective"])], marker="*", markersize=16, color="gold", markeredgecolor="black",
                    linestyle="none", label="best")
        if p.kind == "choice":
            ax.set_xticks(range(len(p.args)))
            ax.set_xticklabels(labels, rotation=20)
            ax.set_xlim(-0.5, len(p.args) - 0.5)
        elif p.log:
            ax.set_xscale("log")
        ax.set_xlabel(f"{p.key} ({p.kind})")
        ax.set_ylabel(f"objective ({objective})")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(params):]:
        ax.axis("off")
    axes.ravel()[0].legend(loc="best", fontsize=8)
    fig.suptitle(f"Sweep: each hyperparameter against the objective (mean over seeds, bars: 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report_sweep(sweep_dir: str, spec: dict, space: Space, stream=None) -> dict:
    """sweep.md, sweep.csv, best_{algo}.toml and sweep.png from the trials' trial.json files."""
    from experiments.report import write_csv

    stream = stream or sys.stdout
    records = ranked([r for r in (trial_record(sweep_dir, k) for k in existing_trials(sweep_dir)) if r is not None])
    keys = [p.key for p in space.params]
    best = next((r for r in records if r["status"] == "done" and not math.isnan(_num(r.get("objective")))), None)
    best_path = os.path.join(sweep_dir, f"best_{spec['algo']}.toml")
    if best is not None:
        with open(best_path, "w") as f:
            f.write(best_preset_text(spec, best, sweep_dir))
    rows = _csv_rows(records, keys)
    write_csv(os.path.join(sweep_dir, "sweep.csv"), rows, ["rank", "trial", "status", *keys, *CSV_TAIL])
    md = sweep_markdown(spec, records, keys, best, best_path if best else None)
    with open(os.path.join(sweep_dir, "sweep.md"), "w") as f:
        f.write(md)
    png = os.path.join(sweep_dir, "sweep.png")
    if records:
        plot_sweep(records, space, spec["objective"], png, best)
    print(md, file=stream)
    print(f"report: {os.path.join(sweep_dir, 'sweep.md')}\nplot: {png}\n"
          f"tensorboard: tensorboard --logdir {sweep_dir}  (HPARAMS tab)", file=stream, flush=True)
    return {"records": records, "best": best, "best_path": best_path if best else None, "png": png}


# ---------------------------------------------------------------------------------------------------
# The command


def _threshold(env: str, given: float | None) -> float:
    if given is not None:
        return float(given)
    from experiments.report import reward_threshold

    t = reward_threshold(env)
    if t is None:
        raise ConfigError(f"{env} has no registered reward threshold: pass --threshold")
    return float(t)


def run_sweep(sweep_dir: str, spec: dict, space: Space, backend: str, max_concurrent: int | None,
              address: str | None, stream=None) -> int:
    stream = stream or sys.stdout
    t0 = time.perf_counter()
    if backend == "ray":
        _require_ray(spec["search"])
        with ray_session(address, max_concurrent):
            code = run_ray(sweep_dir, spec, space, max_concurrent, address, stream)
    else:
        code = run_local(sweep_dir, spec, max_concurrent or max(1, os.cpu_count() or 1), stream)
    t1 = time.perf_counter()
    if any(trial_record(sweep_dir, k) for k in existing_trials(sweep_dir)):
        report_sweep(sweep_dir, spec, space, stream)
    with open(os.path.join(sweep_dir, "timings.jsonl"), "a") as f:
        f.write(json.dumps({"backend": backend, "max_concurrent": max_concurrent, "address": address,
                            "trials_seconds": t1 - t0, "total_seconds": time.perf_counter() - t0,
                            "exit": code, "unix_time": time.time()}) + "\n")
    return code


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ConfigError(f"{name} {value}: must be at least 1")
    return value


def cmd_sweep(args: argparse.Namespace) -> int:
    _RAY_INIT_SECONDS[0] = 0.0
    if args.resume:
        sweep_dir = os.path.abspath(args.resume)
        spec_path = os.path.join(sweep_dir, "sweep.json")
        if not os.path.exists(spec_path):
            raise ConfigError(f"{args.resume}: not a sweep directory (no sweep.json)")
        spec = _read_json(spec_path)
        space, _ = load_space(os.path.join(sweep_dir, "space.toml"), spec["algo"])
        backend = args.backend or ("ray" if args.address else spec["backend"])
        max_concurrent = _positive("--max-concurrent", args.max_concurrent) or spec.get("max_concurrent")
        address = args.address or (spec.get("address") if backend == "ray" else None)
        return run_sweep(sweep_dir, spec, space, backend, max_concurrent, address)

    if not args.space:
        raise ConfigError("--space FILE is required (or --resume DIR)")
    space, algo = load_space(args.space, args.algo)
    backend = args.backend or ("ray" if args.address else "local")
    if backend == "local" and args.early_stop == "asha":
        raise ConfigError("--early-stop asha needs --backend ray (the local backend runs every trial to the end)")
    if backend == "local" and args.search == "optuna":
        raise ConfigError("--search optuna needs --backend ray")
    if args.address and backend != "ray":
        raise ConfigError("--address is for --backend ray")
    trials = _positive("--trials", args.trials)
    _positive("--max-concurrent", args.max_concurrent)
    seeds = parse_seeds(args.seeds)
    check_user_sets(space, args.set, algo)
    spec = {"algo": algo, "env": args.env, "seeds": seeds, "trials": trials, "total_steps": args.total_steps,
            "base_sets": set_items(space.fixed) + list(args.set), "user_sets": list(args.set),
            "search": args.search, "search_seed": args.search_seed, "early_stop": args.early_stop,
            "objective": args.objective, "threshold": None, "backend": backend, "address": args.address,
            "max_concurrent": args.max_concurrent, "space_file": os.path.abspath(args.space)}
    if args.total_steps is not None:
        _positive("--total-steps", args.total_steps)
    # Everything is checked before anything starts: the env, the space's ranges and every sampled config.
    import envs

    envs.check_env_id(args.env)
    spec["threshold"] = _threshold(args.env, args.threshold)
    check_space(space, spec)
    sampled = []
    if args.search == "random":
        rng = np.random.default_rng(args.search_seed)
        sampled = [space.sample(rng) for _ in range(trials)]
        for k, params in enumerate(sampled):
            try:
                trial_config(spec, params)
            except ConfigError as e:
                raise ConfigError(f"{args.space}: trial {k} ({_params_text(params)}) is not a valid config: {e}") from None
    if backend == "ray":  # join the cluster (or start Ray) before anything is written
        _require_ray(args.search)
        with ray_session(args.address, args.max_concurrent):
            return _start_sweep(args, spec, space, algo, sampled, backend)
    return _start_sweep(args, spec, space, algo, sampled, backend)


def _start_sweep(args, spec: dict, space: Space, algo: str, sampled: list[dict], backend: str) -> int:
    stamp = int(time.time())
    while True:  # two sweeps started in the same second get different directories
        sweep_dir = os.path.abspath(os.path.join(args.logdir, f"sweep__{args.env.replace('/', '-')}__{algo}__{stamp}"))
        try:
            os.makedirs(sweep_dir)
            break
        except FileExistsError:
            stamp += 1
    spec["time"] = stamp
    shutil.copyfile(args.space, os.path.join(sweep_dir, "space.toml"))
    write_json(os.path.join(sweep_dir, "sweep.json"), _jsonable(spec))
    write_experiment_summary(sweep_dir, space, args.objective)
    for k, params in enumerate(sampled):
        write_params(sweep_dir, k, params)
    return run_sweep(sweep_dir, spec, space, backend, args.max_concurrent, args.address)


def register(sub) -> None:
    s = sub.add_parser("sweep", help="hyperparameter search over configs × seeds (local processes or Ray)",
                       description="Sample configs from a TOML search space, train each on every seed, rank them. "
                                   "See experiments/sweep.py for the space file format.")
    s.add_argument("--algo", choices=list(ALGOS), help="algorithm (default: the space file's algo)")
    s.add_argument("--env", default="CartPole-v1")
    s.add_argument("--space", metavar="FILE", help="TOML search space, e.g. experiments/sweeps/cartpole_dqn.toml")
    s.add_argument("--trials", type=int, default=16, help="number of configs to try (default 16)")
    s.add_argument("--seeds", default="3", help="seeds per config: a count (3), a range (0-9) or a list (1,4,7)")
    s.add_argument("--total-steps", type=int, help="budget per run (default: the preset's)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed override for every trial, e.g. run.eval_every=2000")
    s.add_argument("--backend", choices=("local", "ray"), help="local processes (default) or Ray Tune")
    s.add_argument("--address", help="Ray cluster to join (auto = the one `ray start` made here); implies --backend ray")
    s.add_argument("--max-concurrent", type=int,
                   help="local: runs at once; ray: trials at once (default: all cores / cluster CPUs)")
    s.add_argument("--search", choices=("random", "optuna"), default="random",
                   help="random (sampled up front) or optuna (TPE via Ray Tune; needs --backend ray)")
    s.add_argument("--search-seed", type=int, default=0, help="seed of the search (default 0)")
    s.add_argument("--early-stop", choices=("none", "asha"), default="none", help="asha: Ray Tune's ASHA scheduler")
    s.add_argument("--objective", choices=tuple(OBJECTIVES), default="auc",
                   help="auc (default: mean eval return over the budget) or final_eval")
    s.add_argument("--threshold", type=float, help="return that counts as solved (default: the env's registry threshold)")
    s.add_argument("--logdir", default="runs")
    s.add_argument("--resume", metavar="DIR", help="run what is missing in a sweep directory, then report")
    s.set_defaults(func=cmd_sweep)
