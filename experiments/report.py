"""Read runs back from their TensorBoard event files and summarise them over seeds.

Everything here reads event files (TensorBoard's own ``EventAccumulator``), never a training process's
memory, so a report can be remade at any time: ``rlnn report DIR``.

Per run: the first greedy evaluation at or above the threshold (env steps and training seconds to
solve), the final greedy evaluation, the area under the evaluation curve (the mean evaluation return
over the budget, trapezoidal in env steps) and SPS. Per algorithm: solved k/n, median (IQR) of the
times to solve over the solved runs, and the mean over seeds of the final return and the area with a 95%
percentile-bootstrap confidence interval.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from agents.rundir import RunDir

BOOTSTRAP_SAMPLES = 10_000


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


def bootstrap_ci(sample, confidence: float = 0.95, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                 axis_len: int | None = None) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``sample`` (1-D)."""
    x = np.asarray(sample, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(samples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def bootstrap_band(curves: np.ndarray, confidence: float = 0.95, samples: int = 1_000, seed: int = 0):
    """(mean, low, high) over axis 0 of ``curves`` (runs × grid), resampling runs."""
    rng = np.random.default_rng(seed)
    n = curves.shape[0]
    means = curves[rng.integers(0, n, size=(samples, n))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return curves.mean(axis=0), np.quantile(means, alpha, axis=0), np.quantile(means, 1.0 - alpha, axis=0)


def load_scalars(run_dir: str) -> dict[str, list]:
    """tag -> list of TensorBoard ScalarEvent (wall_time, step, value), every point."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def find_runs(parent: str) -> list[str]:
    """Run directories directly below ``parent`` (``RunDir.find``), sorted by name."""
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{parent}: no such directory")
    return [rd.path for rd in RunDir.find(parent)]


# The usual bar for envs whose registry entry has no reward threshold (Pendulum's best is about -150).
THRESHOLDS = {"Pendulum-v1": -200.0}


def reward_threshold(env_id: str) -> float | None:
    """The registry's reward threshold of ``env_id``, else ``THRESHOLDS``', else None."""
    import gymnasium as gym

    spec = gym.registry.get(env_id)
    registered = None if spec is None else spec.reward_threshold
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


def area_under_curve(steps: np.ndarray, values: np.ndarray) -> float:
    """Mean evaluation return over the run: trapezoid area from the first to the last eval / the span."""
    if values.size == 0:
        return math.nan
    if values.size == 1:
        return float(values[0])
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def _median_iqr(x: list[float]) -> tuple[float, float, float]:
    if not x:
        return math.nan, math.nan, math.nan
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return float(med), float(q1), float(q3)


def aggregate(runs: list[RunSummary]) -> list[dict]:
    """One row per algorithm (in order of first appearance)."""
    rows = []
    for algo in dict.fromkeys(r.algo for r in runs):
        group = [r for r in runs if r.algo == algo]
        solved = [r for r in group if r.solved]
        finals = [r.final_eval for r in group]
        aucs = [r.auc for r in group]
        st_med, st_q1, st_q3 = _median_iqr([r.steps_to_solve for r in solved])
        sec_med, sec_q1, sec_q3 = _median_iqr([r.seconds_to_solve for r in solved])
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


def fmt(x: float, digits: int = 0) -> str:
    """A table cell: ``x`` with thousands separators and ``digits`` decimals, "–" for a missing number."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


SUMMARY_HEADER = ("solved", "steps to solve, median (IQR)", "seconds to solve, median (IQR)",
                  "final eval, mean [95% CI]", "AUC, mean [95% CI]", "SPS")


def summary_cells(r: dict) -> list[str]:
    """The cells of one ``aggregate`` row under ``SUMMARY_HEADER`` (also the suite's benchmark.md)."""
    return [f"{r['solved']}/{r['runs']}",
            f"{fmt(r['steps_to_solve_median'])} ({fmt(r['steps_to_solve_q1'])}–{fmt(r['steps_to_solve_q3'])})",
            f"{fmt(r['seconds_to_solve_median'], 1)} ({fmt(r['seconds_to_solve_q1'], 1)}–{fmt(r['seconds_to_solve_q3'], 1)})",
            f"{fmt(r['final_eval_mean'], 1)} [{fmt(r['final_eval_ci_low'], 1)}, {fmt(r['final_eval_ci_high'], 1)}]",
            f"{fmt(r['auc_mean'], 1)} [{fmt(r['auc_ci_low'], 1)}, {fmt(r['auc_ci_high'], 1)}]",
            fmt(r['sps_median'])]


def table_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def table_rule(columns: int) -> str:
    return "|" + "---|" * columns


def markdown(rows: list[dict], runs: list[RunSummary], threshold: float, env_id: str) -> str:
    lines = [f"# {env_id}: {', '.join(r['algo'] for r in rows)} over seeds",
             "",
             f"Solved = first greedy evaluation with mean return ≥ {threshold:g}. Medians (IQR) over the solved "
             "runs; means over all seeds with a 95% bootstrap confidence interval. AUC = mean greedy return "
             "over the budget.",
             "",
             table_row(("algo",) + SUMMARY_HEADER),
             table_rule(len(SUMMARY_HEADER) + 1)]
    lines += [table_row([r["algo"], *summary_cells(r)]) for r in rows]
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
        ax.fill_between(grid, lo, hi, color=color, alpha=0.25, linewidth=0)


def plot(runs: list[RunSummary], threshold: float, env_id: str, path: str) -> None:
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
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(f"{env_id}: mean over seeds, shaded 95% bootstrap CI of the mean")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(parent: str, threshold: float | None = None, stream=None, write_plot: bool = True) -> dict:
    """Summarise every run below ``parent``; write summary.md, summary.csv, runs.csv, learning_curves.png."""
    import sys

    stream = stream or sys.stdout
    run_dirs = find_runs(parent)
    if not run_dirs:
        raise FileNotFoundError(f"{parent}: no run directories (with config.json) inside")
    env_id = RunDir(run_dirs[0]).read_config()["run"]["env_id"]
    if threshold is None:
        threshold = reward_threshold(env_id)
        if threshold is None:
            raise ValueError(f"{env_id} has no registered reward threshold: pass --threshold")
    runs = [summarize_run(d, threshold) for d in run_dirs]
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
          f"tensorboard: tensorboard --logdir {parent}", file=stream)
    return {"rows": rows, "runs": runs, "png": png, "threshold": threshold}


def cmd_report(args) -> int:
    from agents.config import ConfigError

    from experiments.compare import SuiteSpec, read_spec

    try:
        if os.path.isfile(os.path.join(args.dir, SuiteSpec.FILE)):   # a suite: every env's report + benchmark
            from experiments.benchmark import suite_report

            suite_report(args.dir, read_spec(args.dir))
        else:
            report(args.dir, threshold=args.threshold)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    return 0


def register(sub) -> None:
    r = sub.add_parser("report", help="summary table and plots of a compare (or suite) directory, from its event files")
    r.add_argument("dir")
    r.add_argument("--threshold", type=float, help="return that counts as solved (default: the env's registry threshold)")
    r.set_defaults(func=cmd_report)
