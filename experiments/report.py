"""Read runs back from their TensorBoard event files and summarise them over seeds.

Everything here reads event files (TensorBoard's own ``EventAccumulator``), never a training process's
memory, so a report can be remade at any time: ``rlnn report DIR``.

Per run: the first greedy evaluation at or above the threshold (env steps and training seconds to
solve), the final greedy evaluation, the area under the evaluation curve (the mean evaluation return
over the budget, trapezoidal in env steps) and SPS. Per algorithm: solved k/n, median (IQR) of the
times to solve over the solved runs, and the mean over seeds of the final return and the area with a 95%
percentile-bootstrap confidence interval (the statistics are ``experiments.stats``'s; with too few seeds
there is no interval and the table says so). ``rlnn report`` is registered with ``rlnn compare``
(``experiments.compare``), which knows compare and suite directories.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from dataclasses import asdict, dataclass, field

import numpy as np

from agents.logger import tensorboard_command
from agents.rundir import RunDir
from experiments.stats import (MIN_RUNS_FOR_CI, area_under_curve, bootstrap_band, bootstrap_ci, compact,
                               few_runs_note, fmt, fmt_ci, median_iqr, missing, table_row, table_rule)


@dataclass
class Curve:
    steps: np.ndarray
    values: np.ndarray
    seconds: np.ndarray | None = None


@dataclass
class RunSummary:
    run: str
    algo: str
    seed: int
    solved: bool
    steps_to_solve: float
    seconds_to_solve: float
    final_eval: float
    auc: float
    sps: float
    total_steps: int
    eval: Curve = field(repr=False, default=None)
    train: Curve = field(repr=False, default=None)


def load_scalars(run_dir: str) -> dict[str, list]:
    """tag -> list of TensorBoard ScalarEvent (wall_time, step, value), every point."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def training_seconds(run_dir: str) -> float:
    """A run's own training seconds so far (its last ``charts/elapsed_seconds``; 0 before the first)."""
    elapsed = load_scalars(run_dir).get("charts/elapsed_seconds", [])
    return elapsed[-1].value if elapsed else 0.0


def find_runs(parent: str) -> list[str]:
    """Run directories directly below ``parent`` (``RunDir.find``), sorted by name."""
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{parent}: no such directory")
    return [rd.path for rd in RunDir.find(parent)]


# The usual bar for envs whose registry entry has no reward threshold (Pendulum's best is about -150).
THRESHOLDS = {"Pendulum-v1": -200.0}


def reward_threshold(env_id: str) -> float | None:
    """The env's registry reward threshold (also of a "module:EnvId"), else ``THRESHOLDS``', else None."""
    import gymnasium as gym

    from envs.source import resolve

    try:
        spec = resolve(env_id)
    except ValueError:
        return None
    registered = spec.reward_threshold if isinstance(spec, gym.envs.registration.EnvSpec) else None
    return THRESHOLDS.get(env_id) if registered is None else registered


def summarize_run(run_dir: str, threshold: float) -> RunSummary:
    cfg = RunDir(run_dir).read_config()
    scalars = load_scalars(run_dir)
    evals = scalars.get("eval/episodic_return", [])
    elapsed = {e.step: e.value for e in scalars.get("charts/elapsed_seconds", [])}
    steps = np.array([e.step for e in evals], dtype=np.int64)
    values = np.array([e.value for e in evals], dtype=np.float64)
    seconds = np.array([elapsed.get(int(s), math.nan) for s in steps], dtype=np.float64)
    solved_at = np.flatnonzero(values >= threshold)
    solved = solved_at.size > 0
    sps = scalars.get("charts/SPS", [])
    train_points = scalars.get("charts/episodic_return", [])
    total = cfg["run"]["total_steps"]
    return RunSummary(
        run=os.path.basename(run_dir), algo=cfg["algo"], seed=int(cfg["run"]["seed"]), solved=bool(solved),
        steps_to_solve=float(steps[solved_at[0]]) if solved else math.nan,
        seconds_to_solve=float(seconds[solved_at[0]]) if solved else math.nan,
        final_eval=float(values[-1]) if values.size else math.nan,
        auc=area_under_curve(steps, values),
        sps=float(np.median([e.value for e in sps])) if sps else math.nan,
        total_steps=int(total),
        eval=Curve(steps, values, seconds),
        train=Curve(np.array([e.step for e in train_points]), np.array([e.value for e in train_points])),
    )


def aggregate(runs: list[RunSummary]) -> list[dict]:
    """One row per algorithm (in order of first appearance)."""
    rows = []
    for algo in dict.fromkeys(r.algo for r in runs):
        group = [r for r in runs if r.algo == algo]
        solved = [r for r in group if r.solved]
        finals = [r.final_eval for r in group]
        aucs = [r.auc for r in group]
        st_med, st_q1, st_q3 = median_iqr([r.steps_to_solve for r in solved])
        sec_med, sec_q1, sec_q3 = median_iqr([r.seconds_to_solve for r in solved])
        f_lo, f_hi = bootstrap_ci(finals)
        a_lo, a_hi = bootstrap_ci(aucs)
        rows.append({
            "algo": algo, "runs": len(group), "solved": len(solved),
            "steps_to_solve_median": st_med, "steps_to_solve_q1": st_q1, "steps_to_solve_q3": st_q3,
            "seconds_to_solve_median": sec_med, "seconds_to_solve_q1": sec_q1, "seconds_to_solve_q3": sec_q3,
            "final_eval_mean": float(np.mean(finals)), "final_eval_ci_low": f_lo, "final_eval_ci_high": f_hi,
            "auc_mean": float(np.mean(aucs)), "auc_ci_low": a_lo, "auc_ci_high": a_hi,
            "sps_median": float(np.median([r.sps for r in group])),
        })
    return rows


SUMMARY_HEADER = ("solved", "steps to solve, median (IQR)", "seconds to solve, median (IQR)",
                  "final eval, mean [95% CI]", "AUC, mean [95% CI]", "SPS")


def _median_iqr(r: dict, key: str, digits: int) -> str:
    """"median (q1–q3)", or "–" when no run was solved."""
    if missing(r[f"{key}_median"]):
        return fmt(math.nan)
    return f"{fmt(r[key + '_median'], digits)} ({fmt(r[key + '_q1'], digits)}–{fmt(r[key + '_q3'], digits)})"


def summary_cells(r: dict) -> list[str]:
    """The cells of one ``aggregate`` row under ``SUMMARY_HEADER`` (also the suite's benchmark.md)."""
    return [f"{r['solved']}/{r['runs']}", _median_iqr(r, "steps_to_solve", 0), _median_iqr(r, "seconds_to_solve", 1),
            fmt_ci(r['final_eval_mean'], r['final_eval_ci_low'], r['final_eval_ci_high']),
            fmt_ci(r['auc_mean'], r['auc_ci_low'], r['auc_ci_high']),
            fmt(r['sps_median'])]


def markdown(rows: list[dict], runs: list[RunSummary], threshold: float | None, env_id: str) -> str:
    solved = (f"Solved = first greedy evaluation with mean return ≥ {threshold:g}. Medians (IQR) over the solved "
              "runs; " if threshold is not None else
              f"{env_id} has no registered reward threshold, so nothing counts as solved (rlnn report DIR "
              "--threshold X remakes this with one); ")
    lines = [f"# {env_id}: {', '.join(r['algo'] for r in rows)} over seeds",
             "",
             solved + "means over all seeds with a 95% bootstrap confidence interval. AUC = mean greedy return "
             "over the budget.",
             "",
             table_row(("algo",) + SUMMARY_HEADER),
             table_rule(len(SUMMARY_HEADER) + 1)]
    lines += [table_row([r["algo"], *summary_cells(r)]) for r in rows]
    note = few_runs_note(min(r["runs"] for r in rows))
    lines += ["", note] if note else []
    lines += ["", "| run | solved | steps to solve | seconds to solve | final eval | AUC | SPS |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.run} | {'yes' if r.solved else 'no'} | {fmt(r.steps_to_solve)} | {fmt(r.seconds_to_solve, 1)} "
                     f"| {fmt(r.final_eval, 1)} | {fmt(r.auc, 1)} | {fmt(r.sps)} |")
    return "\n".join(lines) + "\n"


RUN_FIELDS = ("run", "algo", "seed", "solved", "steps_to_solve", "seconds_to_solve", "final_eval", "auc", "sps",
              "total_steps")


def write_csv(path: str, rows: list[dict], fields) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        for row in rows:
            w.writerow({k: row[k] for k in fields})


def _grid_curves(curves: list[Curve], use_seconds: bool, points: int = 200):
    xs = [c.seconds if use_seconds else c.steps.astype(float) for c in curves]
    keep = [i for i, x in enumerate(xs) if x is not None and x.size and np.all(np.isfinite(x))]
    if not keep:
        return None, None
    end = max(xs[i][-1] for i in keep)
    grid = np.linspace(0.0, end, points)
    # Before its first evaluation a run counts as its first value; after its last, as its last (np.interp).
    return grid, np.stack([np.interp(grid, xs[i], curves[i].values) for i in keep])


def smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """TensorBoard-style exponential moving average with debiasing."""
    out = np.empty_like(values, dtype=np.float64)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(values):
        acc = weight * acc + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out[i] = acc / norm
    return out


def plot_curves(ax, runs: list[RunSummary], algos: list[str], kind: str = "eval", use_seconds: bool = False) -> None:
    """On ``ax``, per algorithm (colour ``C{i}``, ``i`` its index in ``algos``): the mean over its runs of
    the ``kind`` curve ("eval", or "train" smoothed) on a common grid of env steps (or training seconds),
    and the shaded 95% bootstrap band of that mean."""
    for i, algo in enumerate(algos):
        group = [r for r in runs if r.algo == algo]
        curves = [r.eval if kind == "eval" else Curve(r.train.steps, smooth(r.train.values)) for r in group]
        curves = [c for c in curves if c.values.size]
        if not curves:
            continue
        grid, ys = _grid_curves(curves, use_seconds)
        if grid is None:
            continue
        mean, lo, hi = bootstrap_band(ys)
        color = f"C{i}"
        ax.plot(grid, mean, color=color, label=f"{algo} (n={len(curves)})")
        if lo is not None:      # too few runs for a band: the mean line alone
            ax.fill_between(grid, lo, hi, color=color, alpha=0.25, linewidth=0)


def readable_steps(axis) -> None:
    """Ticks of an env-step axis as 500, 20k, 1.5M (plain integers run into each other at 100,000 and up)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda x, _: compact(x)))


def plot(runs: list[RunSummary], threshold: float | None, env_id: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = list(dict.fromkeys(r.algo for r in runs))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    panels = [(axes[0], "eval", False, "env steps", "greedy eval return"),
              (axes[1], "eval", True, "training wall-clock seconds", "greedy eval return"),
              (axes[2], "train", False, "env steps", "training episodic return (smoothed)")]
    for ax, kind, use_seconds, xlabel, ylabel in panels:
        plot_curves(ax, runs, algos, kind, use_seconds)
        if threshold is not None:
            ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if not use_seconds:
            readable_steps(ax.xaxis)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(f"{env_id}: mean over seeds, shaded 95% bootstrap CI of the mean (from {MIN_RUNS_FOR_CI} seeds on)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(parent: str, threshold: float | None = None, stream=None, write_plot: bool = True) -> dict:
    """Summarise every run below ``parent``; write summary.md, summary.csv, runs.csv, learning_curves.png."""
    stream = stream or sys.stdout
    run_dirs = find_runs(parent)
    if not run_dirs:
        raise FileNotFoundError(f"{parent}: no run directories (with config.json) inside")
    env_id = RunDir(run_dirs[0]).read_config()["run"]["env_id"]
    if threshold is None:
        threshold = reward_threshold(env_id)
    runs = [summarize_run(d, math.inf if threshold is None else threshold) for d in run_dirs]
    rows = aggregate(runs)
    md = markdown(rows, runs, threshold, env_id)
    with open(os.path.join(parent, "summary.md"), "w") as f:
        f.write(md)
    write_csv(os.path.join(parent, "summary.csv"), rows, list(rows[0]))
    write_csv(os.path.join(parent, "runs.csv"), [asdict(r) for r in runs], RUN_FIELDS)
    png = os.path.join(parent, "learning_curves.png")
    if write_plot:
        plot(runs, threshold, env_id, png)
    print(md, file=stream)
    print(f"summary: {os.path.join(parent, 'summary.md')}\nplot: {png}\n"
          f"tensorboard: {tensorboard_command(parent)}", file=stream)
    return {"rows": rows, "runs": runs, "png": png, "threshold": threshold}
