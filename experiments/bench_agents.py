"""Benchmark an agent's preset over seeds: does it solve the env, how fast, and does it stay solved?

    python experiments/bench_agents.py --algo dqn [--env CartPole-v1] --seeds 0-9 [--workers 1] [--set agent.lr=1e-3]
    python experiments/bench_agents.py --algo dqn --env LunarLander-v3 --runs runs/suite__1234/LunarLander-v3 [DIR ...]

Per seed: env steps and wall seconds to the first greedy evaluation (run.eval_episodes episodes) with
mean return >= the threshold (default: the env's registry threshold, 475 for CartPole-v1), SPS, and a final greedy evaluation
of 20 episodes on fresh envs after the full budget. Then the summary: solved k/n, median and IQR.
Runs one seed at a time by default: two runs on two cores would make every timing wrong.
``--runs DIR`` trains nothing: it makes the same table from the finished runs of that algo and env in DIR
(e.g. one env's directory of an ``rlnn compare --envs`` suite), whose training is the same as here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import experiments  # noqa: E402,F401  (first: one BLAS thread)
import numpy as np  # noqa: E402

import agents  # noqa: E402
from agents.rundir import RunDir  # noqa: E402
from experiments.compare import parse_seeds  # noqa: E402
from experiments.pool import PARENT_ENV, die_with_parent, orphaned  # noqa: E402


def run_seed(algo: str, env: str, seed: int, sets: list[str], total_steps: int | None, logdir: str,
             threshold: float, final_episodes: int) -> dict:
    t0 = time.perf_counter()
    run = agents.train(algo, env=env, seed=seed, total_steps=total_steps, set=agents.config.parse_sets(sets),
                       logdir=logdir, quiet=True)
    if orphaned():
        os._exit(130)       # a worker whose bench died (its SIGTERM stopped this run): no one waits for more
    return row_of(run, seed, time.perf_counter() - t0, threshold, final_episodes)


def row_of(run: agents.Run, seed: int, wall: float, threshold: float, final_episodes: int) -> dict:
    """A table row: the first eval >= threshold, and ``final_episodes`` fresh greedy episodes (env seed
    10,000 + seed) from the run's last checkpoint."""
    solved = next((e for e in run.evals if e.mean >= threshold), None)
    final = run.evaluate(final_episodes, seed=10_000 + seed)
    return {"seed": seed, "solved_step": solved.step if solved else None,
            "solved_seconds": solved.elapsed if solved else None, "steps": run.step,
            "sps": run.step / wall, "wall": wall, "final_mean": float(final.mean()),
            "final_std": float(final.std()), "run_dir": run.run_dir}


def rows_from_runs(parent: str, algo: str, env: str, threshold: float, final_episodes: int) -> list[dict]:
    """``row_of`` every finished run (status done) of ``algo`` on ``env`` directly below ``parent`` (wall =
    its training seconds as of the last eval)."""
    rows = []
    for run_dir in RunDir.find(parent):
        if run_dir.status != "done":
            continue
        run = agents.load(run_dir.path)
        if run.config.algo == algo and run.config.run.env_id == env and run.evals:
            rows.append(row_of(run, run.config.run.seed, run.evals[-1].elapsed, threshold, final_episodes))
    return rows


def _q(x: list[float]) -> str:
    if not x:
        return "–"
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return f"{med:,.1f} (IQR {q1:,.1f}–{q3:,.1f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", required=True, choices=[a for a in agents.ALGOS if a != "random"])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seeds", default="0-9", help="N (seeds 0..N-1), A-B, or a list like 1,4,7 (default 0-9)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--total-steps", type=int)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--threshold", type=float, help="default: the env's registry reward threshold")
    p.add_argument("--final-episodes", type=int, default=20)
    p.add_argument("--logdir", default=None, help="where runs go (default: a temporary directory)")
    p.add_argument("--runs", metavar="DIR", nargs="+", help="make the table from the finished runs in DIR(s), training nothing")
    args = p.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    if args.threshold is None:
        import gymnasium as gym

        args.threshold = gym.spec(args.env).reward_threshold
    if args.runs:
        rows = sorted((row for parent in args.runs
                       for row in rows_from_runs(parent, args.algo, args.env, args.threshold, args.final_episodes)),
                      key=lambda r: r["seed"])
        logdir = " ".join(args.runs)
        args.seeds = ",".join(str(r["seed"]) for r in rows)
        return report(args, rows, logdir)
    logdir = args.logdir or tempfile.mkdtemp(prefix=f"bench_{args.algo}_")
    jobs = [(args.algo, args.env, s, args.set, args.total_steps, logdir, args.threshold, args.final_episodes) for s in seeds]
    if args.workers > 1:
        os.environ[PARENT_ENV] = str(os.getpid())      # workers die with this process, even by kill -9
        with ProcessPoolExecutor(args.workers, initializer=die_with_parent) as pool:
            rows = list(pool.map(run_seed, *zip(*jobs)))
    else:
        rows = []
        for job in jobs:
            rows.append(run_seed(*job))
            r = rows[-1]
            print(f"  seed {r['seed']} done in {r['wall']:.1f} s", file=sys.stderr, flush=True)
    return report(args, rows, logdir)


def report(args: argparse.Namespace, rows: list[dict], logdir: str) -> int:
    print(f"\n{args.algo} preset on {args.env}, seeds {args.seeds}, workers {args.workers} "
          f"(solved = greedy eval mean >= {args.threshold:g}; final = {args.final_episodes} greedy episodes)\n")
    print("| seed | steps to solve | seconds to solve | SPS | total steps | final eval |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        st = f"{r['solved_step']:,}" if r["solved_step"] is not None else "not solved"
        ss = f"{r['solved_seconds']:.1f}" if r["solved_seconds"] is not None else "–"
        print(f"| {r['seed']} | {st} | {ss} | {r['sps']:,.0f} | {r['steps']:,} | {r['final_mean']:.1f} ± {r['final_std']:.1f} |")
    solved = [r for r in rows if r["solved_step"] is not None]
    final_ok = [r for r in rows if r["final_mean"] >= args.threshold]
    print(f"\nsolved {len(solved)}/{len(rows)}; final eval >= {args.threshold:g} on {len(final_ok)}/{len(rows)}")
    print(f"steps to solve: {_q([r['solved_step'] for r in solved])}")
    print(f"seconds to solve: {_q([r['solved_seconds'] for r in solved])}")
    print(f"SPS: {_q([r['sps'] for r in rows])}")
    print(f"runs in {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
