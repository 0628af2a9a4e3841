"""The local backend of ``rlnn sweep``: every (trial, seed) is an ``rlnn train`` process in the process pool
of ``rlnn compare`` (``experiments.pool``), ``--max-concurrent`` at once.

The trials' params were sampled up front (params.json); a worker reads its trial's config.toml plus the
sweep's ``--set`` items. A trial is summarised as soon as its last seed ends. A diverged seed fails its
trial for good; a crashed or stopped run leaves its trial unfinished, for ``--resume``.
"""

from __future__ import annotations

import time

import tomli_w

from experiments.pool import Job, Outcome, job_for, run_jobs
from experiments.sweep.space import Space
from experiments.sweep.spec import SweepSpec, trial_document
from experiments.sweep.trials import Trial, finish_trial, summarize_trial, trial_line, unfinished_trials


def _diverged(log_path: str) -> bool:
    """`rlnn train` exits 1 for a diverged run and for a crash; only the former prints `rlnn: error:`."""
    try:
        with open(log_path, errors="replace") as f:
            return "rlnn: error:" in f.read()[-4000:]
    except OSError:
        return False


def trial_jobs(trial: Trial, spec: SweepSpec, space: Space) -> list[Job]:
    """The runs of a trial still to do (new runs and resumes), after writing the config file they read."""
    config = trial.file("config.toml")
    with open(config, "wb") as f:
        f.write(f"# {trial.name}: the config file of its `rlnn train` workers; the sweep's --set items "
                "come on top\n".encode())
        tomli_w.dump(trial_document(spec, space, trial.params()), f)
    jobs = (job_for(trial.run_dir(spec, seed), algo=spec.algo, env=spec.env, seed=seed, log_dir=trial.file("logs"),
                    config_file=config, sets=spec.sets, key=trial.index) for seed in spec.seeds)
    return [job for job in jobs if job is not None]


class _Progress:
    """The pool's outcomes per trial: a trial is summarised once its last run ended, unless one of them
    stopped or crashed (then it is ``broken``: left for --resume)."""

    def __init__(self, spec: SweepSpec, trials: dict[int, Trial], remaining: dict[int, int], stream):
        self.spec, self.trials, self.remaining, self.stream = spec, trials, remaining, stream
        self.failed: dict[int, dict[int, str]] = {k: {} for k in trials}  # trial -> seed -> status
        self.broken: set[int] = set()
        self.started = {k: time.perf_counter() for k in trials}

    def on_outcome(self, outcome: Outcome) -> None:
        job, k = outcome.job, outcome.job.key
        if outcome.status == "stopped":
            self.broken.add(k)
        elif outcome.code == 1 and _diverged(job.log_path):
            self.failed[k][job.seed] = "diverged"
        elif outcome.status == "failed":
            self.broken.add(k)
            print(f"  FAILED  run {self.trials[k].name}/{job.name} (exit {outcome.code}; see {job.log_path}); "
                  "it is retried by --resume", file=self.stream, flush=True)
        self.remaining[k] -= 1
        if self.remaining[k] == 0 and k not in self.broken:
            self.finish(k, time.perf_counter() - self.started[k])

    def finish(self, k: int, secs: float | None = None) -> None:
        rec = summarize_trial(self.trials[k], self.spec, self.failed[k])
        finish_trial(self.trials[k], rec)
        print(trial_line(rec, secs), file=self.stream, flush=True)


def run_local(sweep_dir: str, spec: SweepSpec, space: Space, workers: int, stream) -> int:
    """The unfinished trials of ``sweep_dir``; exit code 0, or 1 if a trial is left unfinished."""
    todo = {t.index: t for t in unfinished_trials(sweep_dir)}
    jobs = {k: trial_jobs(t, spec, space) for k, t in todo.items()}
    print(f"sweep: {len(todo)} trial(s), {sum(map(len, jobs.values()))} run(s) to do in {sweep_dir} with "
          f"{workers} worker(s)\nwatch: tensorboard --logdir {sweep_dir}", file=stream, flush=True)
    progress = _Progress(spec, todo, {k: len(v) for k, v in jobs.items()}, stream)
    for k in todo:
        if not jobs[k]:  # every seed finished, the summary was not written yet
            progress.finish(k)
    run_jobs([job for k in todo for job in jobs[k]], workers, progress.on_outcome)
    if progress.broken:
        print(f"sweep: {len(progress.broken)} trial(s) unfinished (a run crashed or stopped); finished trials are "
              f"kept. Finish with: rlnn sweep --resume {sweep_dir}", file=stream, flush=True)
        return 1
    return 0
