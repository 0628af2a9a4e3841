"""The overhead of ``rlnn sweep --backend ray`` against local processes, for the same trials.

    python experiments/bench_sweep.py                       # 8 dqn trials × 1 seed × 2,000 steps, 2 at once
    python experiments/bench_sweep.py --algo random --trials 8 --total-steps 2000 --max-concurrent 2

Both backends run the same pre-sampled trials (same space, same search seed) from a temporary log
directory, one backend after the other; the table shows the wall-clock time of the whole sweep, the
part spent starting Ray (``ray.init``), the sum of the runs' own training seconds (from their event
files), and whether the two backends ranked the trials with identical objectives.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import redirect_stdout

RANDOM_SPACE = """algo = "random"
[run]
normalize_obs = { choice = [true, false] }
num_envs = { choice = [1, 2] }
"""


def _train_seconds(sweep_dir: str) -> float:
    from agents.rundir import RunDir
    from experiments.report import training_seconds
    from experiments.sweep.trials import existing_trials

    return sum(training_seconds(run.path) for trial in existing_trials(sweep_dir) for run in RunDir.find(trial.path))


def run_backend(backend: str, args, space: str, logdir: str) -> dict:
    from experiments.cli import main
    from experiments.sweep.trials import existing_trials

    argv = ["sweep", "--space", space, "--algo", args.algo, "--trials", str(args.trials), "--seeds", str(args.seeds),
            "--total-steps", str(args.total_steps), "--max-concurrent", str(args.max_concurrent), "--logdir", logdir,
            "--backend", backend, "--set", f"run.eval_every={max(1, args.total_steps // 4)}",
            "--set", "run.eval_episodes=5", "--set", f"run.checkpoint_every={args.total_steps}"]
    out = io.StringIO()
    t0 = time.perf_counter()
    with redirect_stdout(out):
        code = main(argv)
    wall = time.perf_counter() - t0
    if code != 0:
        print(out.getvalue(), file=sys.stderr)
        raise SystemExit(f"{backend} sweep failed (exit {code})")
    (name,) = os.listdir(logdir)
    sweep_dir = os.path.join(logdir, name)
    with open(os.path.join(sweep_dir, "timings.jsonl")) as f:
        init = json.loads(f.readlines()[-1]).get("ray_init_seconds") or 0.0
    objectives = {t.index: t.record()["objective"] for t in existing_trials(sweep_dir) if t.record() is not None}
    return {"backend": backend, "wall": wall, "init": init, "train": _train_seconds(sweep_dir), "objectives": objectives}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="dqn", choices=("dqn", "pg", "random"))
    p.add_argument("--space", help="space file (default: experiments/sweeps/cartpole_{algo}.toml; random: built in)")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--total-steps", type=int, default=2_000)
    p.add_argument("--max-concurrent", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="keep the sweep directories")
    args = p.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="bench_sweep_")
    try:
        space = args.space
        if space is None and args.algo == "random":
            space = os.path.join(tmp, "random.toml")
            with open(space, "w") as f:
                f.write(RANDOM_SPACE)
        elif space is None:
            space = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweeps", f"cartpole_{args.algo}.toml")
        rows = [run_backend(b, args, space, os.path.join(tmp, b)) for b in ("local", "ray")]
        local = rows[0]
        runs = args.trials * args.seeds
        print(f"\n{args.trials} trials × {args.seeds} seed(s) × {args.total_steps:,} steps of {args.algo} on CartPole-v1, "
              f"{args.max_concurrent} at once, {os.cpu_count()} cores\n")
        print("| backend | wall-clock s | Ray start s | runs' training s (sum) | wall s per run | overhead vs local "
              "| same objectives as local |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            same = "–" if r is local else ("yes" if r["objectives"] == local["objectives"] else "no")
            over = "–" if r is local else f"+{r['wall'] - local['wall']:.1f} s ({r['wall'] / local['wall']:.2f}×)"
            print(f"| {r['backend']} | {r['wall']:.1f} | {r['init']:.1f} | {r['train']:.1f} | {r['wall'] / runs:.2f} "
                  f"| {over} | {same} |")
        if args.keep:
            print(f"\nsweep directories kept in {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
