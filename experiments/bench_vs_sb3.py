"""Time to threshold: an rlnn preset against Stable-Baselines3 with the RL-Zoo's hyperparameters, one run at a time.

    python experiments/bench_vs_sb3.py --algo ppo --env Pendulum-v1 --seeds 0-4 --sb3-python /path/to/python

Per seed, one after the other: rlnn's preset for (algo, env) in this Python, then SB3's same algorithm with
the zoo's hyperparameters (``ZOO``) in ``--sb3-python`` (a Python with stable-baselines3 and torch on the
CPU, one torch thread). Both evaluate greedily (SB3: ``deterministic=True``) with 10 episodes every
``run.eval_every`` env steps of the rlnn preset and stop at the first evaluation whose mean reaches the
threshold (``experiments.report.reward_threshold``, e.g. -200 for Pendulum-v1) or at their budgets (rlnn:
the preset's; SB3: the zoo's ``n_timesteps``).
Seconds are wall clock from the start of training to the end of that evaluation, evaluations included.
Prints per seed the env steps and seconds to the threshold of both, then the medians and their ratio.

Stable-Baselines3 is imported only in the child process that runs its side (``--side sb3``, started with
``--sb3-python``), so this file imports without it; rlnn is imported only on rlnn's side, so the SB3 Python
needs neither rlnn nor its dependencies beyond gymnasium. Run it under the heavy-job lock: timings of two
jobs sharing the cores mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

class Linear:
    """The zoo's ``lin_X`` learning rate: X times SB3's remaining-progress fraction (1 -> 0)."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, remaining: float) -> float:
        return remaining * self.start

    def __repr__(self) -> str:
        return f"lin_{self.start:g}"


# rl-baselines3-zoo hyperparams/<algo>.yml: n_envs, n_timesteps and the algorithm's keyword arguments. SAC: every
# key not given is SB3's default (net_arch [256, 256], batch 256, buffer 1M, tau 0.005, gamma 0.99, learning_starts
# 100, one gradient step per env step, ent_coef "auto"); the zoo's LunarLanderContinuous entry is for v2, the same
# env as v3.
ZOO = {
    ("ppo", "Pendulum-v1"): {"n_envs": 4, "n_timesteps": 100_000, "kwargs": {
        "n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10, "ent_coef": 0.0,
        "learning_rate": 1e-3, "clip_range": 0.2, "use_sde": True, "sde_sample_freq": 4}},
    ("sac", "Pendulum-v1"): {"n_envs": 1, "n_timesteps": 20_000, "kwargs": {"learning_rate": 1e-3}},
    ("sac", "LunarLanderContinuous-v3"): {"n_envs": 1, "n_timesteps": 500_000, "kwargs": {
        "batch_size": 256, "learning_rate": Linear(7.3e-4), "buffer_size": 1_000_000, "ent_coef": "auto",
        "gamma": 0.99, "tau": 0.01, "train_freq": 1, "gradient_steps": 1, "learning_starts": 10_000,
        "policy_kwargs": {"net_arch": [400, 300]}}},
}
EVAL_EPISODES = 10


def rlnn_side(algo: str, env_id: str, seed: int, threshold: float) -> dict:
    """Train rlnn's preset until an evaluation reaches ``threshold``: env steps and seconds to it."""
    if __package__ in (None, ""):
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import experiments  # noqa: F401  (first: one BLAS thread)
    import agents

    run = agents.train(algo, env=env_id, seed=seed, logdir=tempfile.mkdtemp(prefix="bench_vs_sb3_"), quiet=True,
                       set={"run.stop_at_eval_return": threshold, "run.eval_episodes": EVAL_EPISODES})
    solved = next((e for e in run.evals if e.mean >= threshold), None)
    return {"steps": solved.step if solved else None, "seconds": solved.elapsed if solved else None,
            "budget": run.config.run.total_steps, "eval_every": run.config.run.eval_every}


def sb3_side(algo: str, env_id: str, seed: int, threshold: float, eval_every: int, budget: int,
             max_seconds: float | None = None) -> dict:
    """Train SB3's ``algo`` with the zoo's hyperparameters until an evaluation reaches ``threshold`` (or
    ``max_seconds`` pass: then the steps and seconds it ran without reaching it, a lower bound)."""
    import stable_baselines3
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    zoo = ZOO[(algo, env_id)]
    env = make_vec_env(env_id, n_envs=zoo["n_envs"], seed=seed)
    eval_env = make_vec_env(env_id, n_envs=EVAL_EPISODES, seed=10_000 + seed)
    model = getattr(stable_baselines3, algo.upper())("MlpPolicy", env, seed=seed, device="cpu", **zoo["kwargs"])
    found: dict = {}

    class EvaluateEvery(BaseCallback):
        def _on_training_start(self) -> None:
            self.t0, self.next_eval = time.perf_counter(), eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            self.next_eval += eval_every
            mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
            seconds = time.perf_counter() - self.t0
            print(f"    SB3 seed {seed}: step {self.num_timesteps:,}, {seconds:.0f} s, greedy mean {mean:.1f}",
                  file=sys.stderr, flush=True)
            if mean >= threshold:
                found.update(steps=self.num_timesteps, seconds=seconds)
                return False
            if max_seconds is not None and seconds > max_seconds:
                found.update(cut_steps=self.num_timesteps, cut_seconds=seconds)
                return False
            return True

    model.learn(total_timesteps=budget, callback=EvaluateEvery())
    return {"steps": found.get("steps"), "seconds": found.get("seconds"), "cut_steps": found.get("cut_steps"),
            "cut_seconds": found.get("cut_seconds")}


def run_sb3(python: str, algo: str, env_id: str, seed: int, threshold: float, eval_every: int, budget: int,
            max_seconds: float | None) -> dict:
    cmd = [python, os.path.abspath(__file__), "--side", "sb3", "--algo", algo, "--env", env_id, "--seeds", str(seed),
           "--threshold", str(threshold), "--eval-every", str(eval_every), "--budget", str(budget)]
    if max_seconds is not None:
        cmd += ["--sb3-max-seconds", str(max_seconds)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)        # its progress lines go to our stderr
    if out.returncode != 0:
        raise SystemExit(f"the SB3 side failed (exit {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def fmt(value, spec: str) -> str:
    return "not reached" if value is None else format(value, spec)


def fmt_sb3(side: dict, key: str, spec: str) -> str:
    """SB3's steps or seconds, or the lower bound of a run stopped by --sb3-max-seconds."""
    if side[key] is None and side.get(f"cut_{key}") is not None:
        return f"> {format(side[f'cut_{key}'], spec)} (stopped)"
    return fmt(side[key], spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="ppo")
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--seeds", default="0-4", help="A-B or a list like 1,4,7")
    p.add_argument("--sb3-python", help="a Python with stable-baselines3 and torch")
    p.add_argument("--threshold", type=float, help="default: experiments.report.reward_threshold of the env")
    p.add_argument("--sb3-max-seconds", type=float, help="stop SB3's run after this many seconds without reaching "
                   "the threshold, and report them as a lower bound (default: its budget decides)")
    p.add_argument("--side", choices=["sb3"], help=argparse.SUPPRESS)
    p.add_argument("--eval-every", type=int, help=argparse.SUPPRESS)
    p.add_argument("--budget", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side == "sb3":
        print(json.dumps(sb3_side(args.algo, args.env, int(args.seeds), args.threshold, args.eval_every, args.budget,
                                  args.sb3_max_seconds)))
        return 0
    if (args.algo, args.env) not in ZOO:
        p.error(f"no zoo hyperparameters for {args.algo} on {args.env}: known {', '.join(map(str, ZOO))}")
    if not args.sb3_python:
        p.error("--sb3-python is required: a Python with stable-baselines3 and torch")
    if args.threshold is None:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from experiments.report import reward_threshold

        args.threshold = reward_threshold(args.env)
    rows = []
    for seed in seeds_of(args.seeds):
        ours = rlnn_side(args.algo, args.env, seed, args.threshold)
        theirs = run_sb3(args.sb3_python, args.algo, args.env, seed, args.threshold, ours["eval_every"],
                         ZOO[(args.algo, args.env)]["n_timesteps"], args.sb3_max_seconds)
        rows.append((seed, ours, theirs))
        print(f"  seed {seed}: rlnn {fmt(ours['seconds'], '.2f')} s, SB3 {fmt_sb3(theirs, 'seconds', '.2f')} s",
              file=sys.stderr, flush=True)
    print(f"\n{args.algo} on {args.env}: first greedy evaluation ({EVAL_EPISODES} episodes, every "
          f"{rows[0][1]['eval_every']:,} env steps) >= {args.threshold:g}, budget {rows[0][1]['budget']:,} steps; "
          f"rlnn's preset against SB3 with the zoo's hyperparameters {ZOO[(args.algo, args.env)]}\n")
    print("| seed | rlnn steps | rlnn seconds | SB3 steps | SB3 seconds |")
    print("|---|---|---|---|---|")
    for seed, ours, theirs in rows:
        print(f"| {seed} | {fmt(ours['steps'], ',')} | {fmt(ours['seconds'], '.2f')} | {fmt_sb3(theirs, 'steps', ',')} | "
              f"{fmt_sb3(theirs, 'seconds', '.2f')} |")
    medians = {}
    for side, col in (("rlnn", 1), ("SB3", 2)):
        reached = [r[col]["seconds"] for r in rows if r[col]["seconds"] is not None]
        medians[side] = statistics.median(reached) if reached else None
        print(f"\n{side}: reached on {len(reached)}/{len(rows)}; median seconds {fmt(medians[side], '.2f')}", end="")
    if medians["rlnn"] and medians["SB3"]:
        print(f"\nSB3 / rlnn, medians: {medians['SB3'] / medians['rlnn']:.1f}x")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
