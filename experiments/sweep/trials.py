"""Trials on disk: a trial's directory, its params.json and trial.json, and its summary over seeds.

    SWEEP_DIR/trial_{k:03d}/
        params.json       {"trial": k, "params": {section.key: value}}, written before anything runs
        config.toml       (local backend) the config file its ``rlnn train`` workers read
        {run name}/       one ordinary run directory per seed (``agents.rundir.RunDir``)
        logs/             (local backend) each worker's output
        trial.json        once every seed finished: per-seed and aggregate numbers (``aggregate_trial``)
        events.out.tfevents.*   the trial's hyperparameters and ``sweep/*`` metrics (TensorBoard HPARAMS)

A trial's numbers are read back from its runs' event files (``experiments.report.summarize_run``), never
from a training process's memory, so either backend, and ``--resume``, summarise a trial the same way.
"""

from __future__ import annotations

import glob
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.logger import hparam_value
from agents.rundir import RunDir, RunDirError, read_json, write_json
from experiments.report import summarize_run
from experiments.stats import bootstrap_ci
from experiments.sweep.space import Param, Space, params_text, short
from experiments.sweep.spec import SweepSpec

FINISHED = ("done", "failed", "early_stopped")  # trial statuses that --resume leaves alone
SUMMARY_METRICS = {"sweep/objective": "objective ({objective}), mean over seeds",
                   "sweep/final_eval": "final eval, mean over seeds",
                   "sweep/steps_to_solve": "steps to solve, mean over solved seeds",
                   "sweep/seconds_to_solve": "seconds to solve, mean over solved seeds",
                   "sweep/seeds_solved": "seeds solved"}
_TRIAL_DIR = re.compile(r"trial_(\d+)$")


@dataclass(frozen=True)
class Trial:
    """Trial ``index`` of the sweep in ``sweep_dir`` (its directory need not exist yet)."""

    sweep_dir: str
    index: int

    @property
    def name(self) -> str:
        return f"trial_{self.index:03d}"

    @property
    def path(self) -> str:
        return os.path.join(self.sweep_dir, self.name)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def run_dir(self, spec: SweepSpec, seed: int) -> RunDir:
        return RunDir(self.file(RunDir.name(spec.env, spec.algo, seed, spec.time)))

    def params(self) -> dict[str, Any] | None:
        doc = _read_json(self.file("params.json"))
        if doc is not None and not isinstance(doc.get("params"), dict):
            raise RunDirError(f"{self.file('params.json')}: unreadable (no params object)")
        return None if doc is None else doc["params"]

    def write_params(self, params: dict[str, Any]) -> None:
        os.makedirs(self.path, exist_ok=True)
        write_json(self.file("params.json"), jsonable({"trial": self.index, "params": params}))

    def record(self) -> dict[str, Any] | None:
        """trial.json, or None while the trial has not finished; RunDirError when it is damaged."""
        try:
            return _read_json(self.file("trial.json"))
        except RunDirError as e:
            raise RunDirError(f"{e}: delete it and `rlnn sweep --resume {self.sweep_dir}` remakes it from "
                              "the trial's runs") from None

    @property
    def finished(self) -> bool:
        return (self.record() or {}).get("status") in FINISHED


def _read_json(path: str) -> dict[str, Any] | None:
    return read_json(path) if os.path.isfile(path) else None


def existing_trials(sweep_dir: str) -> list[Trial]:
    """The trials with a params.json, in order."""
    found = (_TRIAL_DIR.match(os.path.basename(d)) for d in glob.glob(os.path.join(sweep_dir, "trial_*")))
    trials = sorted((Trial(sweep_dir, int(m.group(1))) for m in found if m is not None), key=lambda t: t.index)
    return [t for t in trials if os.path.isfile(t.file("params.json"))]


def unfinished_trials(sweep_dir: str) -> list[Trial]:
    return [t for t in existing_trials(sweep_dir) if not t.finished]


def jsonable(x: Any) -> Any:
    """NaN -> None, NumPy scalars -> Python, recursively (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return jsonable(x.item())
    return x


def num(x: Any) -> float:
    """A number of a record (None in JSON for NaN) as a float."""
    return math.nan if x is None else float(x)


def seed_summary(run_dir: RunDir, seed: int, threshold: float, status: str | None = None) -> dict:
    """One seed's numbers from its event files; ``status`` None: done if the run finished, else missing."""
    if status is None:
        status = "done" if run_dir.finished else "missing"
    out = {"seed": seed, "run": os.path.basename(run_dir.path), "status": status}
    if not run_dir.is_run():
        return out
    s = summarize_run(run_dir.path, threshold)
    out.update(auc=s.auc, final_eval=s.final_eval, solved=s.solved, steps_to_solve=s.steps_to_solve,
               seconds_to_solve=s.seconds_to_solve, sps=s.sps, evals=[float(v) for v in s.eval.values])
    return out


def _solved_mean(seeds: list[dict], key: str) -> float:
    solved = [s[key] for s in seeds if s.get("solved")]
    return float(np.mean(solved)) if solved else math.nan


def aggregate_trial(trial: Trial, params: dict, seeds: list[dict], objective: str, config: dict | None) -> dict:
    """A trial's record (trial.json): per-seed numbers and their mean (95% bootstrap CI over seeds)."""
    ok = all(s["status"] == "done" for s in seeds) and len(seeds) > 0
    rec: dict[str, Any] = {"trial": trial.index, "params": params, "status": "done" if ok else "failed",
                           "objective_name": objective,
                           "seeds": [{k: v for k, v in s.items() if k != "evals"} for s in seeds]}
    nan = math.nan
    if ok:
        values = [num(s.get(objective)) for s in seeds]
        lo, hi = bootstrap_ci(values)
        rec.update(objective=float(np.mean(values)), objective_ci_low=lo, objective_ci_high=hi,
                   final_eval=float(np.mean([num(s.get("final_eval")) for s in seeds])),
                   steps_to_solve=_solved_mean(seeds, "steps_to_solve"),
                   seconds_to_solve=_solved_mean(seeds, "seconds_to_solve"))
    else:
        rec.update(objective=nan, objective_ci_low=nan, objective_ci_high=nan, final_eval=nan,
                   steps_to_solve=nan, seconds_to_solve=nan)
    rec.update(seeds_solved=sum(bool(s.get("solved")) for s in seeds), num_seeds=len(seeds))
    if config is not None:
        rec["config"] = config
    return rec


def first_config(trial: Trial, spec: SweepSpec) -> dict | None:
    """The config.json of the trial's first seed, if that run started (None: e.g. it ran on another node)."""
    rd = trial.run_dir(spec, spec.seeds[0])
    return rd.read_config() if rd.is_run() else None


def summarize_trial(trial: Trial, spec: SweepSpec, failed: dict[int, str] | None = None) -> dict:
    """Read a finished trial's runs back from their event files (``failed``: seed -> status)."""
    failed = failed or {}
    seeds = [seed_summary(trial.run_dir(spec, s), s, spec.threshold, failed.get(s)) for s in spec.seeds]
    return aggregate_trial(trial, trial.params(), seeds, spec.objective, first_config(trial, spec))


def finish_trial(trial: Trial, rec: dict) -> None:
    """trial.json and the trial's TensorBoard event file (HPARAMS tab: its params and metrics)."""
    from agents.logger import EVENT_FILE_PREFIX, TensorBoardSink

    os.makedirs(trial.path, exist_ok=True)
    for old in glob.glob(trial.file(EVENT_FILE_PREFIX + "*")):  # a re-finished trial: one session only
        os.remove(old)
    sink = TensorBoardSink(trial.path)
    sink.hparams({key: hparam_value(v) for key, v in rec["params"].items()}, start_time=time.time())
    for tag in SUMMARY_METRICS:
        value = rec.get(tag.split("/", 1)[1])
        if value is not None and math.isfinite(float(value)):
            sink.scalar(tag, float(value), 0)
    sink.close()
    write_json(trial.file("trial.json"), jsonable(rec))


def _tb_domain(p: Param):
    from tensorboard.plugins.hparams import summary_v2 as hp

    if p.kind == "choice":
        return hp.Discrete([hparam_value(v) for v in p.args])
    if p.integer:
        return hp.IntInterval(int(p.args[0]), int(p.args[1]))
    return hp.RealInterval(float(p.args[0]), float(p.args[1]))


def write_experiment_summary(sweep_dir: str, space: Space, objective: str) -> None:
    """The HPARAMS tab's columns: the searched keys and the sweep metrics (an event file at the root)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    hparams = [hp.HParam(p.key, _tb_domain(p)) for p in space.params]
    metrics = [hp.Metric(tag, display_name=name.format(objective=objective)) for tag, name in SUMMARY_METRICS.items()]
    metrics.append(hp.Metric("eval/episodic_return", display_name="last eval return (per-seed runs)"))
    writer = EventFileWriter(sweep_dir)
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=0,
                                     summary=hp.hparams_config_pb(hparams, metrics, time_created_secs=time.time())))
    writer.close()


def trial_line(rec: dict, secs: float | None = None) -> str:
    """A finished trial as the progress output shows it."""
    name = f"trial_{rec['trial']:03d}"
    extra = f" ({secs:.1f} s)" if secs is not None else ""
    if rec["status"] == "failed":
        bad = [s for s in rec["seeds"] if s["status"] != "done"] or [{"seed": "?", "status": "failed"}]
        return f"  FAILED  {name}: seed {bad[0]['seed']} {bad[0]['status']}{extra}  [{params_text(rec['params'])}]"
    label = "stopped " if rec["status"] == "early_stopped" else "done    "
    return (f"  {label}{name}  {rec['objective_name']} {short(num(rec.get('objective')))}{extra}  "
            f"[{params_text(rec['params'])}]")
