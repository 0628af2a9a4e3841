"""The Ray Tune backend of ``rlnn sweep`` (``pip install 'rlnn[ray]'``), for ``--early-stop asha`` and
``--search optuna``: the only module that imports Ray Tune and Optuna, so it is imported only for them.
(A plain random search on ``--backend ray`` runs its trials as executor jobs instead, ``sweep.jobs``.)

A Tune trial trains its seeds one after the other in-process (``train_trial``) and reports the eval return
at every evaluation, so ``--early-stop asha`` (ASHA on the running mean eval return, time axis = env steps
over the trial's seeds) can stop bad trials early. ``--search optuna`` lets Optuna's TPE propose trials
(Ray's OptunaSearch) instead of the pre-sampled random ones. Trials are numbered on the driver
(``TrialSearcher``) so that every trial has one directory, whichever node trains it; the driver writes
every trial's summary (``Progress``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from typing import Any

import numpy as np
import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher

from agents.config import ConfigError, TrainConfig
from agents.logger import tensorboard_command
from agents.loop import TrainingDiverged, train
from agents.rundir import RunDir
from experiments.sweep.space import Param, Space
from experiments.sweep.spec import SweepSpec, trial_config
from experiments.sweep.trials import (FINISHED, Trial, aggregate_trial, existing_trials, finish_trial, first_config,
                                      jsonable, num, seed_summary, trial_line, unfinished_trials)


def require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("--search optuna needs Optuna: pip install 'rlnn[ray]'") from None


# ---------------------------------------------------------------------------------------------------
# Params <-> Tune's search space (choices as JSON strings, so that Optuna accepts lists too)


def tune_domain(p: Param):
    if p.kind == "choice":
        return tune.choice([json.dumps(v) for v in p.args])
    lo, hi = p.args
    return {"uniform": lambda: tune.uniform(lo, hi), "loguniform": lambda: tune.loguniform(lo, hi),
            "int": lambda: tune.randint(lo, hi + 1), "logint": lambda: tune.lograndint(lo, hi + 1)}[p.kind]()


def from_tune(p: Param, value: Any) -> Any:
    return json.loads(value) if p.kind == "choice" else (int(value) if p.integer else float(value))


def to_tune(p: Param, value: Any) -> Any:
    """A value as ``tune_domain`` draws it (the inverse of ``from_tune``)."""
    return json.dumps(value) if p.kind == "choice" else value


# ---------------------------------------------------------------------------------------------------
# One Tune trial, in a Ray worker


def _train_seed(trial: Trial, spec: SweepSpec, space: Space, params: dict, seed: int, offset: int,
                evals: list[float]) -> dict:
    """One seed of a trial (resumed from its checkpoint, if it has one); reports every evaluation."""
    rd = trial.run_dir(spec, seed)
    if rd.finished:
        s = seed_summary(rd, seed, spec.threshold)
        evals += s.get("evals", [])
        return s

    def on_iteration(info: dict) -> None:
        if info["eval"] is not None:
            evals.append(info["eval"].mean)
            tune.report({"env_steps": offset + info["eval"].step, "eval_return": info["eval"].mean,
                         "objective": float(np.mean(evals)), "seed": seed, "trial": trial.index})

    try:
        if rd.has_checkpoint():
            cfg = TrainConfig.from_dict(rd.read_config(), rd.file(RunDir.CONFIG))
            train(cfg.algo, cfg.run, cfg.agent, run_dir=rd.path, resume=True, console=False, callback=on_iteration)
        else:
            cfg = trial_config(spec, space, params, seed)
            train(cfg.algo, cfg.run, cfg.agent, run_dir=rd.path, console=False, callback=on_iteration)
    except TrainingDiverged:
        return seed_summary(rd, seed, spec.threshold, "diverged")
    return seed_summary(rd, seed, spec.threshold)


def train_trial(config: dict, sweep_dir: str, spec: SweepSpec, space: Space, budget: int) -> None:
    """A Tune trainable: the trial's seeds one after the other, then its record as the final report."""
    trial, params = Trial(sweep_dir, int(config["trial"])), config["params"]
    if trial.params() is None:  # a node that does not share the sweep directory
        trial.write_params(params)
    evals: list[float] = []
    seeds: list[dict] = []
    for i, seed in enumerate(spec.seeds):
        seeds.append(_train_seed(trial, spec, space, params, seed, i * budget, evals))
        if seeds[-1]["status"] == "diverged":
            break  # the trial has failed: its other seeds would not change that
    rec = aggregate_trial(trial, params, seeds, spec.objective, first_config(trial, spec))
    if rec["status"] == "failed":
        rec["seeds"] += [{"seed": s, "status": "skipped"} for s in spec.seeds[len(seeds):]]
    tune.report({"env_steps": budget * len(spec.seeds), "objective": num(rec["objective"]), "trial": trial.index,
                 "sweep_final": 1, "sweep_record": json.dumps(jsonable(rec))})


# ---------------------------------------------------------------------------------------------------
# On the driver: the searcher, the scheduler, the progress callback


def _optuna(sweep_dir: str, spec: SweepSpec, space: Space):
    """Ray's OptunaSearch (TPE), warm-started with the trials earlier sessions finished."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    domains = OptunaSearch.convert_search_space({p.key: tune_domain(p) for p in space.params})
    inner = OptunaSearch(space=domains, metric="objective", mode="max", seed=spec.search_seed)
    by_key = space.by_key()
    for trial in existing_trials(sweep_dir):
        rec = trial.record()
        if rec is not None and rec.get("status") in FINISHED:
            point = {key: to_tune(by_key[key], v) for key, v in rec["params"].items()}
            value = rec.get("objective")
            inner.add_evaluated_point(point, value if value is not None else math.nan,
                                      error=value is None, pruned=rec["status"] == "early_stopped")
    return inner


class TrialSearcher(Searcher):
    """Hands out our trials: first the existing unfinished ones (their params.json), then (``inner``: Optuna)
    ``new`` trials proposed by Optuna, numbered here so that every trial has one directory."""

    def __init__(self, sweep_dir: str, space: Space, pending: list[int], new: int, inner: Searcher | None):
        super().__init__()
        self.sweep_dir, self.space, self.pending, self.new, self.inner = sweep_dir, space, list(pending), new, inner
        self.proposed: set[str] = set()  # Tune trial ids that Optuna proposed
        self.params: dict[str, dict] = {}
        self.next_index = max((t.index for t in existing_trials(sweep_dir)), default=-1) + 1

    def set_search_properties(self, metric, mode, config, **spec):
        self._metric, self._mode = metric, mode
        return True

    def suggest(self, trial_id: str):
        if self.pending:
            k = self.pending.pop(0)
            params = Trial(self.sweep_dir, k).params()
        elif self.inner is not None and self.new > 0:
            raw = self.inner.suggest(trial_id)
            if raw is None:
                return None
            params = {p.key: from_tune(p, raw[p.key]) for p in self.space.params}
            k, self.next_index, self.new = self.next_index, self.next_index + 1, self.new - 1
            Trial(self.sweep_dir, k).write_params(params)
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
            params = self.params[trial_id]  # a resumed trial: Optuna learns from it too
            self.inner.add_evaluated_point({p.key: to_tune(p, params[p.key]) for p in self.space.params},
                                           result["objective"])


class EarlyStopping(ASHAScheduler):
    """ASHA that remembers which trials it stopped early (``stopped_early``: Tune trial ids); a trial
    stopped at its final report finished instead."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stopped_early: set[str] = set()

    def on_trial_result(self, controller, trial, result):
        decision = super().on_trial_result(controller, trial, result)
        if decision == TrialScheduler.STOP and not result.get("sweep_final"):
            self.stopped_early.add(trial.trial_id)
        return decision


class Progress(tune.Callback):
    """On the driver: writes each finished (or early-stopped) trial's summary and prints its line (to
    sys.stdout: the Tuner pickles its callbacks, and an output stream need not pickle)."""

    def __init__(self, sweep_dir: str, spec: SweepSpec, scheduler: EarlyStopping | None):
        self.sweep_dir, self.spec, self.scheduler = sweep_dir, spec, scheduler
        self.starts: dict[str, float] = {}
        self.errors: list[int] = []

    def on_trial_start(self, iteration, trials, trial, **info):
        self.starts[trial.trial_id] = time.perf_counter()

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        if result.get("sweep_final"):
            rec = json.loads(result["sweep_record"])
        elif self.scheduler is not None and trial.trial_id in self.scheduler.stopped_early:
            rec = self._early_stopped(trial, result)
        else:
            return
        finish_trial(Trial(self.sweep_dir, rec["trial"]), rec)
        secs = time.perf_counter() - self.starts.get(trial.trial_id, time.perf_counter())
        print(trial_line(rec, secs), flush=True)

    def _early_stopped(self, trial, result: dict) -> dict:
        return {"trial": int(trial.config["trial"]), "params": trial.config["params"], "status": "early_stopped",
                "objective_name": self.spec.objective, "objective": result.get("objective"),
                "objective_ci_low": None, "objective_ci_high": None, "final_eval": None, "steps_to_solve": None,
                "seconds_to_solve": None, "seeds_solved": None, "num_seeds": len(self.spec.seeds),
                "stopped_at_env_steps": result.get("env_steps"), "seeds": []}

    def on_trial_error(self, iteration, trials, trial, **info):
        k = int(trial.config["trial"])
        self.errors.append(k)
        print(f"  FAILED  trial_{k:03d} (Ray error; see {trial.error_file or 'the Ray logs'}); "
              "it is retried by --resume", flush=True)


# ---------------------------------------------------------------------------------------------------
# The session and the sweep


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


def _budget(spec: SweepSpec, space: Space) -> int:
    """Env steps of one seed (the upper bound when total_steps is searched)."""
    p = space.by_key().get("run.total_steps")
    return int(max(p.args)) if p is not None else trial_config(spec, space, {}).run.total_steps


def _scheduler(spec: SweepSpec, space: Space, max_t: int) -> EarlyStopping | None:
    if spec.early_stop != "asha":
        return None
    eval_every = trial_config(spec, space, {}).run.eval_every
    # stop_last_trials=False: a trial that reaches max_t is not "stopped" before its final report.
    return EarlyStopping(time_attr="env_steps", max_t=max_t, grace_period=min(max_t, max(eval_every, max_t // 9)),
                         reduction_factor=3, stop_last_trials=False)


def _fit(tuner: tune.Tuner) -> None:
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


def run_ray(sweep_dir: str, spec: SweepSpec, space: Space, init_seconds: float, stream) -> int:
    """The missing trials through Ray Tune; Ray must be initialized (``experiments.executor.ray.ray_session``)."""
    pending = [t.index for t in unfinished_trials(sweep_dir)]
    new = max(0, spec.trials - len(existing_trials(sweep_dir))) if spec.search == "optuna" else 0
    if not pending and not new:
        print(f"sweep: 0 trial(s) to do in {sweep_dir}", file=stream, flush=True)
        return 0
    budget = _budget(spec, space)
    where = f"cluster {spec.address}, joined" if spec.address else "local instance, started"
    print(f"sweep: {len(pending) + new} trial(s) to do in {sweep_dir} on Ray ({where} in {init_seconds:.1f} s, "
          f"{int(ray.cluster_resources().get('CPU', 0))} CPU(s))\nwatch: {tensorboard_command(sweep_dir)}",
          file=stream, flush=True)
    scheduler = _scheduler(spec, space, budget * len(spec.seeds))
    progress = Progress(sweep_dir, spec, scheduler)
    inner = _optuna(sweep_dir, spec, space) if spec.search == "optuna" else None
    trainable = tune.with_resources(tune.with_parameters(train_trial, sweep_dir=sweep_dir, spec=spec, space=space,
                                                         budget=budget), {"cpu": 1})
    _fit(tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric="objective", mode="max", num_samples=len(pending) + new,
                                    search_alg=TrialSearcher(sweep_dir, space, pending, new, inner),
                                    scheduler=scheduler, max_concurrent_trials=spec.max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=f"tune_{int(time.time())}", storage_path=os.path.join(sweep_dir, "ray"),
                                  verbose=0, callbacks=[progress, JsonLoggerCallback(), CSVLoggerCallback()]),
    ))
    missing = unfinished_trials(sweep_dir)
    if progress.errors:
        print(f"sweep: {len(progress.errors)} trial(s) failed in Ray; the other trials are intact. "
              f"Retry them with: rlnn sweep --resume {sweep_dir}", file=stream, flush=True)
        return 1
    if missing or (spec.search == "optuna" and len(existing_trials(sweep_dir)) < spec.trials):
        print(f"sweep: {len(missing)} trial(s) unfinished; finished trials are kept. "
              f"Finish it with: rlnn sweep --resume {sweep_dir}", file=stream, flush=True)
        return 130
    return 0
