"""The trials of ``rlnn sweep`` as executor jobs (``experiments.executor``, as ``rlnn compare`` runs its
runs): every (trial, seed) is an ``rlnn train`` process, ``--max-concurrent`` at once, on local processes
or (``--backend ray`` with random search and no early stopping) on Ray.

The trials' params were sampled up front (params.json); a worker reads its trial's config.toml plus the
sweep's ``--set`` items. A trial is summarised as soon as its last seed ends. A diverged seed fails its
trial for good; a crashed or stopped run leaves its trial unfinished, for ``--resume``.
"""

from __future__ import annotations

import time

import tomli_w

from agents.logger import tensorboard_command
from experiments.executor import Executor, Job, Outcome, RunProgress, job_for
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


class _Trials:
    """The executor's outcomes per trial: a trial is summarised once its last run ended, unless one of them
    stopped or crashed (then it is ``broken``: left for --resume). Lines go through ``out``, the display
    of the running runs."""

    def __init__(self, spec: SweepSpec, trials: dict[int, Trial], remaining: dict[int, int], out: RunProgress):
        self.spec, self.trials, self.remaining, self.out = spec, trials, remaining, out
        self.failed: dict[int, dict[int, str]] = {k: {} for k in trials}  # trial -> seed -> status
        self.broken: set[int] = set()
        self.started = {k: time.perf_counter() for k in trials}

    def on_outcome(self, outcome: Outcome) -> None:
        job, k = outcome.job, outcome.job.key
        self.out.ended(outcome)
        if outcome.status == "stopped":
            self.broken.add(k)
        elif outcome.code == 1 and _diverged(job.log_path):
            self.failed[k][job.seed] = "diverged"
        elif outcome.status == "failed":
            self.broken.add(k)
            self.out.print(f"  FAILED  run {self.trials[k].name}/{job.name} (exit {outcome.code}; see "
                           f"{job.log_path}); it is retried by --resume")
        self.remaining[k] -= 1
        if self.remaining[k] == 0 and k not in self.broken:
            self.finish(k, time.perf_counter() - self.started[k])

    def finish(self, k: int, secs: float | None = None) -> None:
        rec = summarize_trial(self.trials[k], self.spec, self.failed[k])
        finish_trial(self.trials[k], rec)
        self.out.print(trial_line(rec, secs))


def run_trials(sweep_dir: str, spec: SweepSpec, space: Space, executor: Executor, stream) -> int:
    """The unfinished trials of ``sweep_dir``; exit code 0, or 1 if a trial is left unfinished."""
    todo = {t.index: t for t in unfinished_trials(sweep_dir)}
    jobs = {k: trial_jobs(t, spec, space) for k, t in todo.items()}
    print(f"sweep: {len(todo)} trial(s), {sum(map(len, jobs.values()))} run(s) to do in {sweep_dir} on "
          f"{executor.where}\nwatch: {tensorboard_command(sweep_dir)}", file=stream, flush=True)
    out = RunProgress(stream, total=sum(map(len, jobs.values())))
    trials = _Trials(spec, todo, {k: len(v) for k, v in jobs.items()}, out)
    for k in todo:
        if not jobs[k]:  # every seed finished, the summary was not written yet
            trials.finish(k)
    try:
        executor.run([job for k in todo for job in jobs[k]], trials.on_outcome, on_start=out.started, on_tick=out.tick)
    finally:
        out.close()
    if trials.broken:
        print(f"sweep: {len(trials.broken)} trial(s) unfinished (a run crashed or stopped); finished trials are "
              f"kept. Finish with: rlnn sweep --resume {sweep_dir}", file=stream, flush=True)
        return 1
    return 0
