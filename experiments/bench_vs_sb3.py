"""Time to threshold: rlnn's SAC preset against Stable-Baselines3's SAC with the RL-Zoo's hyperparameters.

    python experiments/bench_vs_sb3.py --env Pendulum-v1 --seeds 0-2 --sb3-python /path/to/venv/bin/python
    python experiments/bench_vs_sb3.py --env LunarLanderContinuous-v3 --seeds 0 --sb3-python ... --sb3-max-steps 500000

Per seed, one after the other, each in a fresh process with one thread (never two runs at once: they would
share the cores and both timings would be wrong): rlnn's preset for (sac, env), then SB3's SAC with the
zoo's settings (``ZOO`` below; torch CPU, ``torch.set_num_threads(1)``). Both stop at the first greedy
evaluation whose mean return reaches the threshold (``--threshold``, default the registry's; Pendulum-v1
has none: -200), evaluated the same way: ``run.eval_episodes`` deterministic episodes every
``run.eval_every`` env steps of rlnn's preset. Seconds to threshold: rlnn's training clock at that
evaluation (evaluation time included); SB3's wall clock from the start of ``learn`` with its evaluation
time left out (in SB3's favour). SB3 is imported only in the SB3 process, from ``--sb3-python``'s
environment (stable-baselines3 and torch need not be installed with rlnn).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
DEFAULT_THRESHOLDS = {"Pendulum-v1": -200.0}     # envs without a registry threshold
# rl-baselines3-zoo hyperparams/sac.yml (the LunarLanderContinuous entry is the zoo's v2, the same env as v3);
# every key not named is SB3's SAC default (net_arch [256, 256], batch 256, buffer 1M, tau 0.005, gamma 0.99,
# learning_starts 100, train_freq 1, gradient_steps 1, ent_coef "auto").
ZOO = {
    "Pendulum-v1": {"n_timesteps": 20_000, "learning_rate": 1e-3},
    "LunarLanderContinuous-v3": {"n_timesteps": 500_000, "batch_size": 256, "learning_rate": ("lin", 7.3e-4),
                                 "buffer_size": 1_000_000, "ent_coef": "auto", "gamma": 0.99, "tau": 0.01,
                                 "train_freq": 1, "gradient_steps": 1, "learning_starts": 10_000,
                                 "net_arch": [400, 300]},
}


# ------------------------------------------------------------------------ the two sides, one process each
def run_rlnn(env: str, seed: int, threshold: float) -> dict:
    import experiments  # noqa: F401  (one BLAS thread)
    import agents

    run = agents.train("sac", env=env, seed=seed, set={"run.stop_at_eval_return": threshold},
                       logdir=tempfile.mkdtemp(prefix="bench_vs_sb3_"), quiet=True)
    evals = [(e.step, e.elapsed, e.mean) for e in run.evals]
    return {"evals": evals, "steps": run.step, "seconds": evals[-1][1] if evals else None}


def run_sb3(env: str, seed: int, threshold: float, eval_every: int, eval_episodes: int, max_steps: int | None) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    zoo = dict(ZOO[env])
    total = int(max_steps or zoo.pop("n_timesteps"))
    zoo.pop("n_timesteps", None)
    kwargs = {k: v for k, v in zoo.items() if k != "net_arch"}
    if isinstance(kwargs.get("learning_rate"), tuple):       # the zoo's "lin_X": X times the remaining fraction
        start = kwargs["learning_rate"][1]
        kwargs["learning_rate"] = lambda remaining: remaining * start
    if "net_arch" in zoo:
        kwargs["policy_kwargs"] = {"net_arch": zoo["net_arch"]}
    eval_env = gym.make(env)

    class Evaluate(BaseCallback):
        """Greedy episodes every ``eval_every`` steps; stops training at the threshold. The clock leaves
        the evaluations out."""

        def _on_training_start(self) -> None:
            self.t0, self.eval_seconds, self.evals = time.perf_counter(), 0.0, []

        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every:
                return True
            t = time.perf_counter()
            train_seconds = t - self.t0 - self.eval_seconds
            returns, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=eval_episodes, deterministic=True,
                                         return_episode_rewards=True)
            self.eval_seconds += time.perf_counter() - t
            mean = float(sum(returns) / len(returns))
            self.evals.append((self.num_timesteps, train_seconds, mean))
            return mean < threshold

    model = SAC("MlpPolicy", env, seed=seed, verbose=0, **kwargs)
    callback = Evaluate()
    model.learn(total_timesteps=total, callback=callback)
    evals = callback.evals
    return {"evals": evals, "steps": model.num_timesteps, "seconds": evals[-1][1] if evals else None}


# ------------------------------------------------------------------------------------------ the parent
def first_at(evals: list, threshold: float):
    return next(((step, seconds) for step, seconds, mean in evals if mean >= threshold), (None, None))


def side(python: str, which: str, env: str, seed: int, threshold: float, eval_every: int, eval_episodes: int,
         max_steps: int | None) -> dict:
    """One side's run in a fresh process; its result dict."""
    argv = [python, os.path.abspath(__file__), "--side", which, "--env", env, "--seeds", str(seed),
            "--threshold", str(threshold), "--eval-every", str(eval_every), "--eval-episodes", str(eval_episodes)]
    if max_steps:
        argv += ["--sb3-max-steps", str(max_steps)]
    done = subprocess.run(argv, cwd=ROOT, env=dict(os.environ, **ONE_THREAD), capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"bench_vs_sb3: the {which} run of seed {seed} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Pendulum-v1", choices=sorted(ZOO))
    p.add_argument("--seeds", default="0", help="N (seeds 0..N-1), A-B, or a list like 1,4,7")
    p.add_argument("--threshold", type=float, help="default: the registry's (Pendulum-v1: -200)")
    p.add_argument("--sb3-python", default=os.path.join(os.path.dirname(ROOT), "sb3", "bin", "python"),
                   help="a Python with stable-baselines3 and torch")
    p.add_argument("--sb3-max-steps", type=int, help="SB3's budget if it never reaches the threshold (default: the zoo's)")
    p.add_argument("--only", choices=["rlnn", "sb3"], help="run one side only")
    p.add_argument("--side", choices=["rlnn", "sb3"], help=argparse.SUPPRESS)
    p.add_argument("--eval-every", type=int, help=argparse.SUPPRESS)
    p.add_argument("--eval-episodes", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threshold is None:
        import gymnasium as gym

        args.threshold = DEFAULT_THRESHOLDS.get(args.env, gym.spec(args.env).reward_threshold)
    if args.side == "rlnn":
        print(json.dumps(run_rlnn(args.env, int(args.seeds), args.threshold)))
        return 0
    if args.side == "sb3":
        print(json.dumps(run_sb3(args.env, int(args.seeds), args.threshold, args.eval_every, args.eval_episodes,
                                 args.sb3_max_steps)))
        return 0

    from agents import config
    from experiments.compare import parse_seeds

    preset = config.build("sac", args.env).run
    rows = []
    for seed in parse_seeds(args.seeds):
        for which, python in (("rlnn", sys.executable), ("sb3", args.sb3_python)):
            if args.only and which != args.only:
                continue
            result = side(python, which, args.env, seed, args.threshold, preset.eval_every, preset.eval_episodes,
                          args.sb3_max_steps)
            step, seconds = first_at(result["evals"], args.threshold)
            rows.append({"side": which, "seed": seed, "step": step, "seconds": seconds, "steps": result["steps"],
                         "sps": result["steps"] / result["seconds"] if result["seconds"] else float("nan")})
            r = rows[-1]
            print(f"  {which} seed {seed}: {'not reached' if step is None else f'{step:,} steps, {seconds:.1f} s'}",
                  file=sys.stderr, flush=True)
    report(args, preset, rows)
    return 0


def report(args, preset, rows: list[dict]) -> None:
    import numpy as np

    print(f"\nSAC on {args.env}: time to the first greedy mean of {preset.eval_episodes} episodes >= {args.threshold:g} "
          f"(evaluated every {preset.eval_every:,} env steps)\n")
    print("| side | seed | steps to threshold | seconds to threshold | env steps run | SPS |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        st = "not reached" if r["step"] is None else f"{r['step']:,}"
        ss = "–" if r["seconds"] is None else f"{r['seconds']:.1f}"
        print(f"| {r['side']} | {r['seed']} | {st} | {ss} | {r['steps']:,} | {r['sps']:,.0f} |")
    medians = {}
    for which in ("rlnn", "sb3"):
        secs = [r["seconds"] for r in rows if r["side"] == which and r["step"] is not None]
        n = sum(r["side"] == which for r in rows)
        if n:
            medians[which] = float(np.median(secs)) if secs else None
            print(f"\n{which}: reached on {len(secs)}/{n}; median seconds to threshold "
                  f"{'–' if not secs else f'{medians[which]:.1f}'}")
    if medians.get("rlnn") and medians.get("sb3"):
        print(f"\nSB3 / rlnn, median seconds to threshold: {medians['sb3'] / medians['rlnn']:.1f}x")


if __name__ == "__main__":
    sys.exit(main())
