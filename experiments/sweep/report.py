"""The report of a sweep, from its trial.json files: the ranking (sweep.md, sweep.csv), the best config as a
preset (best_{algo}.toml, for ``rlnn train --config``) and the plot (sweep.png, each hyperparameter
against the objective).

Ranking: finished trials by objective (best first), then early-stopped ones, then failed ones (a trial
with a diverged seed), ties by trial number.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import numpy as np
import tomli_w

from agents.logger import hparam_value, tensorboard_command
from experiments.sweep.space import Param, Space, params_text, short
from experiments.sweep.spec import OBJECTIVES, SweepSpec, trial_config
from experiments.report import readable_steps, write_csv
from experiments.stats import few_runs_note, fmt, fmt_ci, table_row, table_rule
from experiments.sweep.trials import existing_trials, num

STATUS_ORDER = {"done": 0, "early_stopped": 1, "failed": 2}
CSV_TAIL = ("objective_mean", "objective_ci_low", "objective_ci_high", "final_eval_mean", "steps_to_solve_mean",
            "seconds_to_solve_mean", "seeds_solved", "seeds")
STATUS_COLORS = {"done": "C0", "early_stopped": "C1", "failed": "C3"}  # the plot's point colours
POINT_ALPHA = 0.8
BEST_COLOR = "gold"


def ranked(records: list[dict]) -> list[dict]:
    def key(r):
        obj = num(r.get("objective"))
        return STATUS_ORDER.get(r["status"], 3), math.isnan(obj), -obj if not math.isnan(obj) else 0, r["trial"]

    return sorted(records, key=key)


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


def _table_row(rank: int, r: dict, keys: list[str]) -> str:
    obj = fmt_ci(r.get("objective"), r.get("objective_ci_low"), r.get("objective_ci_high"))
    if r["status"] == "early_stopped":
        obj = f"{fmt(r.get('objective'), 1)} (partial, at {int(num(r.get('stopped_at_env_steps')) or 0):,} steps)"
    solved = f"{r['seeds_solved']}/{r['num_seeds']}" if r.get("seeds_solved") is not None else "–"
    return table_row([str(rank), f"{r['trial']:03d}", r["status"], *(short(r["params"].get(k)) for k in keys), obj,
                      fmt(r.get("final_eval"), 1), fmt(r.get("steps_to_solve")), fmt(r.get("seconds_to_solve"), 1),
                      solved])


def sweep_markdown(spec: SweepSpec, records: list[dict], keys: list[str], best: dict | None,
                   best_file: str | None) -> str:
    seeds = ", ".join(map(str, spec.seeds))
    lines = [f"# Sweep: {spec.algo} on {spec.env}", "",
             f"{len(records)} of {spec.trials} trials × {len(spec.seeds)} seed(s) ({seeds}); search "
             f"{spec.search} (search seed {spec.search_seed}), early stop {spec.early_stop}, backend "
             f"{spec.backend}.", "",
             f"Objective `{spec.objective}`: {OBJECTIVES[spec.objective]}, mean over seeds with a 95% "
             f"bootstrap CI. Solved = first greedy evaluation ≥ {spec.threshold:g}; steps/seconds to solve are "
             "means over the solved seeds.", "",
             table_row(["rank", "trial", "status", *keys, "objective [95% CI]", "final eval", "steps to solve",
                        "seconds to solve", "solved"]),
             table_rule(len(keys) + 8)]
    lines += [_table_row(rank, r, keys) for rank, r in enumerate(records, 1)]
    lines.append("")
    if note := few_runs_note(len(spec.seeds), "seed per trial"):
        lines += [note, ""]
    if best is not None:
        lines += [f"Best: trial {best['trial']:03d} ({params_text(best['params'])}), written as a preset: "
                  f"`rlnn train --config {best_file}`.", ""]
    else:
        lines += ["No trial finished all its seeds: no best config.", ""]
    return "\n".join(lines)


def best_preset_text(spec: SweepSpec, space: Space, rec: dict, sweep_dir: str) -> str:
    """The best trial's whole config as a TOML preset (TOML has no none: unset keys are named in a comment
    and keep the preset's value when the file is used)."""
    config = rec.get("config")
    if config is None:  # the runs live on another node: rebuild the config
        config = trial_config(spec, space, rec["params"]).to_dict()
    doc: dict[str, Any] = {"algo": spec.algo}
    unset = []
    for section, skip in (("run", ("seed", "logdir")), ("agent", ())):
        doc[section] = {k: v for k, v in config[section].items() if k not in skip and v is not None}
        unset += [f"{section}.{k}" for k, v in config[section].items() if k not in skip and v is None]
    header = [f"# The best config of `rlnn sweep` {sweep_dir} (trial {rec['trial']:03d}):",
              f"# {spec.objective} {fmt_ci(rec.get('objective'), rec.get('objective_ci_low'), rec.get('objective_ci_high'))}"
              f" (mean [95% CI]) over seeds {', '.join(map(str, spec.seeds))}.",
              f"# Searched: {params_text(rec['params'])}",
              "# Use: rlnn train --config THIS_FILE [--seed N] [--total-steps N]"]
    if unset:
        header.append(f"# Unset (none): {', '.join(unset)}")
    return "\n".join(header) + "\n" + tomli_w.dumps(doc)


def _label(v: Any) -> str:
    """A choice as the plot's x axis names it: strings as they are, anything else as JSON."""
    return v if isinstance(v, str) else json.dumps(v)


def _x(p: Param, value: Any) -> float:
    """Where a value sits on its panel's x axis (a choice: its index)."""
    return float([_label(c) for c in p.args].index(_label(value)) if p.kind == "choice" else value)


def _panel(ax, p: Param, records: list[dict], best: dict | None, objective: str) -> None:
    """One hyperparameter against the objective: a point per trial (bars: 95% CI), the best as a star."""
    for status, color in STATUS_COLORS.items():
        group = [r for r in records if r["status"] == status and not math.isnan(num(r.get("objective")))]
        if not group:
            continue
        xs = np.array([_x(p, r["params"][p.key]) for r in group])
        if p.kind == "choice" and len(xs) > 1:
            xs = xs + np.linspace(-0.08, 0.08, len(xs))  # trials on the same choice side by side
        ys = np.array([num(r["objective"]) for r in group])
        lo = np.array([num(r.get("objective_ci_low")) for r in group])
        hi = np.array([num(r.get("objective_ci_high")) for r in group])
        yerr = np.vstack([np.nan_to_num(ys - lo), np.nan_to_num(hi - ys)])
        ax.errorbar(xs, ys, yerr=yerr, fmt="o", color=color, alpha=POINT_ALPHA, capsize=2,
                    label=status.replace("_", " "))
    if best is not None:
        ax.plot([_x(p, best["params"][p.key])], [num(best["objective"])], marker="*", markersize=16,
                color=BEST_COLOR, markeredgecolor="black", linestyle="none", label="best",
                zorder=3)  # above the trial's own point (errorbar draws its points above zorder 2)
    if p.kind == "choice":
        ax.set_xticks(range(len(p.args)))
        ax.set_xticklabels([_label(c) for c in p.args], rotation=20)
        ax.set_xlim(-0.5, len(p.args) - 0.5)
    elif p.log:
        ax.set_xscale("log")
    elif p.integer:     # e.g. run.total_steps or agent.buffer_size
        readable_steps(ax.xaxis)
    ax.set_xlabel(f"{p.key} ({p.kind})")
    ax.set_ylabel(f"objective ({objective})")
    ax.grid(alpha=0.3)


def plot_sweep(records: list[dict], space: Space, objective: str, path: str, best: dict | None) -> None:
    """sweep.png: one panel per searched key, three to a row, in the space file's order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(space.params))
    rows = math.ceil(len(space.params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    for ax, p in zip(axes.ravel(), space.params):
        _panel(ax, p, records, best, objective)
    for ax in axes.ravel()[len(space.params):]:
        ax.axis("off")
    axes.ravel()[0].legend(loc="best", fontsize=8)
    fig.suptitle("Sweep: each hyperparameter against the objective (mean over seeds, bars: 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report_sweep(sweep_dir: str, spec: SweepSpec, space: Space, stream=None) -> dict:
    """sweep.md, sweep.csv, best_{algo}.toml and sweep.png from the trials' trial.json files."""
    stream = stream or sys.stdout
    records = ranked([r for r in (t.record() for t in existing_trials(sweep_dir)) if r is not None])
    keys = [p.key for p in space.params]
    best = next((r for r in records if r["status"] == "done" and not math.isnan(num(r.get("objective")))), None)
    best_path = os.path.join(sweep_dir, f"best_{spec.algo}.toml") if best is not None else None
    if best is not None:
        with open(best_path, "w") as f:
            f.write(best_preset_text(spec, space, best, sweep_dir))
    write_csv(os.path.join(sweep_dir, "sweep.csv"), _csv_rows(records, keys), ["rank", "trial", "status", *keys,
                                                                               *CSV_TAIL])
    md = sweep_markdown(spec, records, keys, best, best_path)
    with open(os.path.join(sweep_dir, "sweep.md"), "w") as f:
        f.write(md)
    png = os.path.join(sweep_dir, "sweep.png")
    if records:
        plot_sweep(records, space, spec.objective, png, best)
    print(md, file=stream)
    print(f"report: {os.path.join(sweep_dir, 'sweep.md')}\nplot: {png}\n"
          f"tensorboard: {tensorboard_command(sweep_dir)}  (HPARAMS tab)", file=stream, flush=True)
    return {"records": records, "best": best, "best_path": best_path, "png": png}
