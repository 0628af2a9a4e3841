"""Is a training script as fast as ``rlnn train``? The README's script-API call against the command line, for
the same config, alternated pair by pair, on a quiet machine and with another process keeping a core busy.

    python experiments/bench_script_vs_cli.py [--algo dqn] [--env CartPole-v1] [--steps 10000] [--pairs 3]

Each run is a fresh process with the user's environment as it is (no BLAS variable set by this script:
the script side is ``python -c "import agents; agents.train(...)"``, exactly what a user writes; the
command side is ``rlnn train`` of this Python environment). SPS is the run's env steps over its training
seconds (``charts/elapsed_seconds`` at the last step, from progress.csv), so process start-up is not
counted on either side. "busy" runs a pure-Python spin loop in another process for the whole pair.
Prints per pair the SPS of both and the ratio, then the medians per condition.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.rundir import RunDir  # noqa: E402

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def user_env() -> dict[str, str]:
    """The environment a user's shell gives: no BLAS thread count (what the pin must handle itself)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def sps_of(logdir: str) -> float:
    (run_dir,) = RunDir.find(logdir)
    elapsed = run_dir.scalars("charts/elapsed_seconds")["charts/elapsed_seconds"]
    last = max(elapsed)
    return last / elapsed[last]


def run_script(algo: str, env_id: str, steps: int, seed: int, logdir: str) -> float:
    code = (f"import agents\nagents.train({algo!r}, env={env_id!r}, seed={seed}, total_steps={steps}, "
            f"logdir={logdir!r}, quiet=True)\n")
    subprocess.run([sys.executable, "-c", code], env=user_env(), check=True)
    return sps_of(logdir)


def run_cli(algo: str, env_id: str, steps: int, seed: int, logdir: str) -> float:
    rlnn = os.path.join(os.path.dirname(sys.executable), "rlnn")
    subprocess.run([rlnn, "train", "--algo", algo, "--env", env_id, "--seed", str(seed), "--total-steps",
                    str(steps), "--logdir", logdir, "--quiet"], env=user_env(), check=True)
    return sps_of(logdir)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", default="dqn", help="algorithm (default dqn: its preset)")
    p.add_argument("--env", default="CartPole-v1", help="env id (default CartPole-v1)")
    p.add_argument("--steps", type=int, default=10_000, help="env steps per run (default 10,000)")
    p.add_argument("--pairs", type=int, default=3, help="script/command pairs per condition (default 3)")
    p.add_argument("--conditions", default="quiet,busy", help="quiet, busy or both (default quiet,busy)")
    args = p.parse_args()
    ratios: dict[str, list[tuple[float, float]]] = {}
    print(f"{args.algo} on {args.env}, {args.steps:,} steps a run, seed = pair number")
    print("| condition | pair | script SPS | rlnn train SPS | script / command |\n|---|---|---|---|---|")
    for condition in args.conditions.split(","):
        spinner = None
        if condition == "busy":
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for pair in range(args.pairs):
                with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                    script = run_script(args.algo, args.env, args.steps, pair, a)
                    command = run_cli(args.algo, args.env, args.steps, pair, b)
                ratios.setdefault(condition, []).append((script, command))
                print(f"| {condition} | {pair} | {script:,.0f} | {command:,.0f} | {script / command:.2f} |", flush=True)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print("\n| condition | median script SPS | median rlnn train SPS | ratio of medians |\n|---|---|---|---|")
    for condition, pairs in ratios.items():
        s, c = statistics.median(x for x, _ in pairs), statistics.median(y for _, y in pairs)
        print(f"| {condition} | {s:,.0f} | {c:,.0f} | {s / c:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
