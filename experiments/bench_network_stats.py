"""What looking inside the network costs: the same runs with network statistics off and on.

    python experiments/bench_network_stats.py [--algo dqn] [--steps 20000] [--every 5000 1000] [--repeats 3]

Trains the same seed with ``run.network_log_every = 0`` and with each ``--every`` value (alternating, best
of ``--repeats`` to damp noise) and prints wall seconds and the overhead in percent.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import experiments  # noqa: E402,F401  (first: one BLAS thread)
from agents import config  # noqa: E402
from agents.loop import train  # noqa: E402


def timed_run(algo: str, steps: int, every: int, logdir: str) -> float:
    cfg = config.build(algo, "CartPole-v1", None, [
        f"run.network_log_every={every}", "run.eval_episodes=0", f"run.checkpoint_every={steps}"],
        {"total_steps": steps, "logdir": logdir, "seed": 0})
    t0 = time.perf_counter()
    train(algo, cfg.run, cfg.agent, console=False)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="dqn", choices=["dqn", "pg"])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--every", type=int, nargs="+", default=[5_000, 1_000])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    logdir = tempfile.mkdtemp(prefix="bench_netstats_")
    settings = [0, *args.every]
    best = {e: float("inf") for e in settings}
    for _ in range(args.repeats):
        for every in settings:
            best[every] = min(best[every], timed_run(args.algo, args.steps, every, logdir))
    print(f"{args.algo} preset, {args.steps:,} env steps, best of {args.repeats}\n")
    print("| network_log_every | wall s | overhead |")
    print("|---|---|---|")
    for every in settings:
        label = "0 (off)" if every == 0 else f"{every:,}"
        print(f"| {label} | {best[every]:.2f} | {100 * (best[every] / best[0] - 1):+.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
