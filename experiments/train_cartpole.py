"""Train CartPole agents from a script: typed configs in, the shared loop, a greedy check out.

    python experiments/train_cartpole.py [--algo dqn|pg] [--seed 0]
"""

import argparse
import dataclasses

import numpy as np

import envs
from agents.dqn import DQNConfig
from agents.loop import RunConfig, evaluate, train
from agents.pg import PGConfig
from experiments import config
from experiments.evaluate import load_agent

parser = argparse.ArgumentParser()
parser.add_argument("--algo", choices=["dqn", "pg"], default="dqn")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

# 1. Typed configs: the tuned preset (experiments/configs/cartpole_{algo}.toml), then changes by hand.
run, agent, _ = config.build(args.algo, "CartPole-v1", overrides={"seed": args.seed})
if isinstance(agent, DQNConfig):
    run = dataclasses.replace(run, eval_every=5_000)  # fewer greedy evaluations than the preset's
elif isinstance(agent, PGConfig):
    run = dataclasses.replace(run, total_steps=100_000)  # PG solves in ~25k steps; stop early
    agent = dataclasses.replace(agent, lr_anneal_steps=100_000)

# 2. The loop builds the vector env and the agent, trains, evaluates, logs and checkpoints.
result = train(args.algo, run, agent)
print(f"{result.run_dir}: {result.step:,} steps, last greedy eval {result.evals[-1].mean:.1f}")

# 3. Back from the checkpoint: a fresh env, greedy actions of the trained network.
_, run, trained, _, _ = load_agent(result.run_dir)
env = envs.make_vec_env(run.env_id, num_envs=20, seed=123)
returns = evaluate(trained, env, seed=123)
print(f"20 greedy episodes on fresh envs: {np.mean(returns):.1f} ± {np.std(returns):.1f}")
