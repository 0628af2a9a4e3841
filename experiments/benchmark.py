"""The benchmark of a suite (``rlnn compare --envs A,B,...``): one table, one figure and one aggregate over envs.

A suite directory (``experiments.compare.SuiteSpec``)::

    runs/suite__{time}/
        suite.json                    the plan: envs, algos, seeds, budget, --set items
        {env}/                        an ordinary compare directory per env: compare.json, the runs, logs/,
                                      summary.md, summary.csv, runs.csv, learning_curves.png (rlnn report {env})
        benchmark.md, benchmark.csv   per env and algo: threshold, budget and the env's own summary row
        benchmark.png                 a panel per env: mean greedy eval return vs env steps per algo, 95% band

Per env and algorithm the numbers are that env's summary row (``experiments.report.aggregate``, read from
the runs' event files): solved k/n, steps and seconds to the threshold (median, IQR over the solved runs),
final greedy eval and AUC (mean over seeds, 95% bootstrap CI), SPS.

Across envs, as Agarwal et al. (2021, "Deep RL at the edge of the statistical precipice") compare
algorithms over few seeds: each run's final greedy eval becomes a normalized score
``(final_eval - random_return) / (threshold - random_return)``: 0 is the uniform-random agent, 1 the env's
registry threshold. The random return is *measured each time the report is made*, nothing cached: the
mean return of ``RANDOM_EPISODES`` episodes of the uniform-random agent (``agents.random``, acting through
the loop's own greedy evaluation, ``agents.evaluate``) on fresh envs made like the runs' (their
``env_kwargs``), reset with seed 0, so a remade report gets the same number. (A suite's own ``random``
runs, if it has any, are not used for it.) Then per algorithm the interquartile mean (IQM) of all its
runs' scores, envs pooled, and per pair of algorithms, in ``--algos`` order, the probability of
improvement P(X > Y): per env the probability that a run of X scores higher than a run of Y (ties count
half), averaged over envs. Their 95% confidence intervals are stratified-bootstrap intervals (runs
resampled within each env, percentile method) from ``rliable``, the optional extra ``rlnn[suite]``:
without it the aggregate section is one line saying how to install it, and everything else is written.
``experiments.stats.iqm`` and ``probability_of_improvement`` are the statistics themselves (they equal
rliable's ``aggregate_iqm`` and ``probability_of_improvement``, which the tests check); rliable resamples
them. With fewer than ``experiments.stats.MIN_RUNS_FOR_CI`` runs per env there is no interval, and below
``ENOUGH_RUNS`` the report says the runs are too few for confident intervals.
"""

from __future__ import annotations

import io
import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from agents.config import ConfigError
from agents.logger import tensorboard_command
from agents.rundir import RunDir
from experiments import report as reports
from experiments.report import SUMMARY_HEADER, RunSummary, summary_cells
from experiments.stats import (MIN_RUNS_FOR_CI, few_runs_note, fmt, fmt_ci, iqm, probability_of_improvement,
                               table_row, table_rule)

RANDOM_EPISODES = 20
BOOTSTRAP_REPS = 10_000
INSTALL_HINT = "pip install 'rlnn[suite]'"
FILES = ("benchmark.md", "benchmark.csv", "benchmark.png")


@dataclass
class EnvResult:
    """One env of a suite: its threshold, the random agent's return, its summary rows and runs."""

    env: str
    threshold: float
    random_return: float
    rows: list[dict]             # experiments.report.aggregate: one per algorithm
    runs: list[RunSummary]


def threshold_of(env_id: str) -> float:
    """The env's registry reward threshold; ConfigError when it has none (a suite normalizes by it)."""
    threshold = reports.reward_threshold(env_id)
    if threshold is None:
        raise ConfigError(f"{env_id} has no registered reward threshold, which a suite needs to normalize "
                          f"scores: compare on it alone with --env {env_id}")
    return float(threshold)


def random_return(env_id: str, env_kwargs: dict | None = None, episodes: int = RANDOM_EPISODES, seed: int = 0) -> float:
    """Mean return of ``episodes`` episodes of the uniform-random agent on fresh envs (one episode per
    sub-env, reset with ``seed``): the 0 of the normalized score."""
    import envs
    from agents.base import EnvInfo
    from agents.evaluate import evaluate
    from agents.random import RandomAgent, RandomConfig

    env = envs.make_eval_env(env_id, episodes, **(env_kwargs or {}))
    try:
        agent = RandomAgent(RandomConfig(), EnvInfo.from_env(env), np.random.default_rng(seed))
        return float(np.mean(evaluate(agent, env, seed=seed)))
    finally:
        env.close()


def normalized_score(final_eval, random_return: float, threshold: float):
    """``(final_eval - random_return) / (threshold - random_return)``: 0 = the random agent, 1 = the threshold."""
    span = threshold - random_return
    if not span > 0:
        raise ValueError(f"threshold {threshold:g} is not above the random return {random_return:g}")
    return (np.asarray(final_eval, dtype=np.float64) - random_return) / span


def score_matrix(results: list[EnvResult], algo: str) -> np.ndarray:
    """Normalized scores of ``algo``, runs × envs (columns in ``results`` order): its seeds that have a
    final greedy eval in every env."""
    finals = [{r.seed: r.final_eval for r in res.runs if r.algo == algo and math.isfinite(r.final_eval)}
              for res in results]
    seeds = sorted(set.intersection(*(set(f) for f in finals))) if finals else []
    scores = [[normalized_score(f[s], res.random_return, res.threshold) for f, res in zip(finals, results)]
              for s in seeds]
    return np.array(scores, dtype=np.float64).reshape(len(seeds), len(results))


def across_envs(results: list[EnvResult], algos, reps: int | None = None) -> dict:
    """{"scores": {algo: runs × envs}, "iqm": {algo: (point, low, high)}, "poi": {(x, y): (point, low, high)},
    "missing": None, or the line to print when rliable is not importable}."""
    reps = reps or BOOTSTRAP_REPS
    scores = {a: m for a in algos if (m := score_matrix(results, a)).shape[0] > 0}
    out = {"scores": scores, "iqm": {}, "poi": {}, "missing": None}
    try:
        from rliable import library as rly
    except ImportError:
        out["missing"] = f"The IQM and P(X > Y) with stratified-bootstrap CIs need rliable: {INSTALL_HINT}"
        return out
    except Exception as e:  # e.g. arch < 8 (rliable's pin) fails on import under pandas 3
        out["missing"] = (f"rliable does not import ({type(e).__name__}: {e}); {INSTALL_HINT} installs "
                          "versions that work")
        return out
    order = list(scores)
    pairs = {(x, y): [scores[x], scores[y]] for i, x in enumerate(order) for y in order[i + 1:]}
    few = {a for a, m in scores.items() if m.shape[0] < MIN_RUNS_FOR_CI}
    nan = (math.nan, math.nan)
    # Too few runs for an interval: the point alone (no rliable call, whose interval would be the point)
    out["iqm"] = {a: (iqm(scores[a]), *nan) for a in few}
    out["poi"] = {p: (probability_of_improvement(*pairs[p]), *nan) for p in pairs if few & set(p)}
    state = np.random.get_state()
    np.random.seed(0)  # rliable resamples with NumPy's global RNG: seeded so a remade report has the same CIs
    try:
        if ok := {a: m for a, m in scores.items() if a not in few}:
            points, cis = rly.get_interval_estimates(ok, lambda s: np.array([iqm(s)]), reps=reps)
            out["iqm"].update({a: (float(points[a][0]), float(cis[a][0, 0]), float(cis[a][1, 0])) for a in ok})
        if ok_pairs := {p: v for p, v in pairs.items() if p not in out["poi"]}:
            points, cis = rly.get_interval_estimates(
                ok_pairs, lambda a, b: np.array([probability_of_improvement(a, b)]), reps=reps)
            out["poi"].update({p: (float(points[p][0]), float(cis[p][0, 0]), float(cis[p][1, 0])) for p in ok_pairs})
    finally:
        np.random.set_state(state)
    out["poi"] = {p: out["poi"][p] for p in pairs}    # in --algos order
    return out


def benchmark_rows(results: list[EnvResult]) -> list[dict]:
    """One row per (env, algo): env, algo, threshold, budget (total env steps per run), random return,
    then the env's summary row."""
    rows = []
    for res in results:
        for row in res.rows:
            budget = max(r.total_steps for r in res.runs if r.algo == row["algo"])
            rows.append({"env": res.env, "algo": row["algo"], "threshold": res.threshold, "budget": budget,
                         "random_return": res.random_return, **{k: v for k, v in row.items() if k != "algo"}})
    return rows


def markdown(spec, results: list[EnvResult], rows: list[dict], agg: dict, pending: list[str]) -> str:
    lines = [f"# Benchmark: {', '.join(spec.algos)} on {', '.join(spec.envs)} over {len(spec.seeds)} seed(s)",
             "",
             "Per env and algorithm, the env's own summary (`{env}/summary.md`): solved = runs whose greedy "
             "evaluation reached the env's registry threshold; steps and seconds to it are medians (IQR) over "
             "the solved runs; final eval and AUC (mean greedy return over the budget) are means over seeds "
             "with a 95% bootstrap CI; budget = env steps per run.",
             "",
             table_row(("env", "algo", "threshold", "budget") + SUMMARY_HEADER),
             table_rule(len(SUMMARY_HEADER) + 4)]
    lines += [table_row([r["env"], r["algo"], f"{r['threshold']:g}", fmt(r["budget"]), *summary_cells(r)])
              for r in rows]
    note = few_runs_note(min(r["runs"] for r in rows))
    lines += ["", note] if note else []
    lines += [f"\n{env}: no run has ended yet (finish with rlnn compare --resume)" for env in pending]
    lines += ["", "## Across envs: normalized scores (Agarwal et al. 2021)", "",
              "Score of a run = (final eval − random return) / (threshold − random return): 0 is the uniform-"
              f"random agent (mean of {RANDOM_EPISODES} episodes, measured when this report was made), 1 the "
              "threshold.", "",
              "| env | threshold | random return |", "|---|---|---|"]
    lines += [f"| {res.env} | {res.threshold:g} | {fmt(res.random_return, 1)} |" for res in results]
    lines.append("")
    if agg["missing"]:
        return "\n".join(lines + [agg["missing"]]) + "\n"
    lines += [f"IQM = interquartile mean of all runs' scores, envs pooled; P(X > Y) = per env the probability "
              "that a run of X scores higher than a run of Y (ties count half), averaged over envs. 95% CIs: "
              f"stratified bootstrap, runs resampled within each env (rliable, {BOOTSTRAP_REPS:,} resamples).",
              "", "| algo | runs per env | IQM of normalized scores [95% CI] |", "|---|---|---|"]
    for algo in spec.algos:
        if algo in agg["iqm"]:
            lines.append(f"| {algo} | {agg['scores'][algo].shape[0]} | {fmt_ci(*agg['iqm'][algo], digits=2)} |")
        else:
            lines.append(f"| {algo} | 0 | – (no seed has a final eval in every env) |")
    if agg["poi"]:
        lines += ["", "| X > Y | P(X > Y) [95% CI] |", "|---|---|"]
        lines += [f"| {x} > {y} | {fmt_ci(*v, digits=2)} |" for (x, y), v in agg["poi"].items()]
    if agg["scores"]:
        note = few_runs_note(min(m.shape[0] for m in agg["scores"].values()), "run per env")
        lines += ["", note] if note else []
    return "\n".join(lines) + "\n"


def plot_suite(results: list[EnvResult], algos: list[str], path: str) -> None:
    """A panel per env: mean greedy eval return vs env steps per algorithm (colour ``C{i}``, ``i`` its
    index in ``algos``), its 95% bootstrap band, and the env's threshold dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(results)
    ncols = 2 if n == 4 else min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 4.2 * nrows), squeeze=False)
    for ax, res in zip(axes.flat, results):
        reports.plot_curves(ax, res.runs, algos, "eval")
        ax.axhline(res.threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {res.threshold:g}")
        ax.set_title(res.env)
        ax.set_xlabel("env steps")
        reports.readable_steps(ax.xaxis)
        ax.set_ylabel("greedy eval return")
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes.flat[0].legend(loc="best", fontsize="small")
    fig.suptitle(f"Mean greedy eval return over seeds, shaded 95% bootstrap CI of the mean (from {MIN_RUNS_FOR_CI} "
                 "seeds on); dashed: threshold")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def suite_report(parent: str, spec, stream=None, write_plot: bool = True) -> dict:
    """Each env's compare report (summary.md, .csv, runs.csv, learning_curves.png in ``{env}/``), then
    benchmark.md, benchmark.csv and benchmark.png in ``parent``; prints benchmark.md."""
    stream = stream or sys.stdout
    results, pending = [], []
    for env in spec.envs:
        env_dir = spec.env_dir(parent, env)
        run_dirs = RunDir.find(env_dir)
        if not any(rd.read_result() is not None for rd in run_dirs):
            pending.append(env)
            continue
        out = reports.report(env_dir, threshold=threshold_of(env), stream=io.StringIO(), write_plot=write_plot)
        env_kwargs = run_dirs[0].read_config()["run"].get("env_kwargs", {})
        results.append(EnvResult(env, out["threshold"], random_return(env, env_kwargs), out["rows"], out["runs"]))
    if not results:
        raise FileNotFoundError(f"{parent}: no run of the suite has ended yet")
    rows = benchmark_rows(results)
    agg = across_envs(results, spec.algos)
    md = markdown(spec, results, rows, agg, pending)
    md_path, csv_path, png_path = (os.path.join(parent, name) for name in FILES)
    with open(md_path, "w") as f:
        f.write(md)
    reports.write_csv(csv_path, rows, list(rows[0]))
    # Colours as in each env's learning_curves.png: algorithms in the order of their run directories' names.
    algos = sorted({r.algo for res in results for r in res.runs})
    if write_plot:
        plot_suite(results, algos, png_path)
    print(md, file=stream)
    print(f"benchmark: {md_path}\nplot: {png_path}\nper env: {', '.join(spec.env_dir(parent, e) for e in spec.envs)}"
          f"\ntensorboard: {tensorboard_command(parent)}", file=stream)
    return {"results": results, "rows": rows, "aggregate": agg, "md": md_path, "csv": csv_path, "png": png_path}
