"""Train CartPole agents from a script: typed configs in, the shared loop, a greedy check out.

    python experiments/train_cartpole.py [--algo dqn|pg] [--seed 0]
"""

import argparse

import numpy as np

import envs
from agents.dqn import DQNConfig
from agents.loop import RunConfig, evaluate, train
from agents.pg import PGConfig
from experiments.evaluate import load_agent

parser = argparse.ArgumentParser()
parser.add_argument("--algo", choices=["dqn", "pg"], default="dqn")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

# 1. Configs: every field is typed and documented in its dataclass; these are the presets' values.
if args.algo == "dqn":
    run = RunConfig(env_id="CartPole-v1", seed=args.seed, total_steps=50_000, eval_every=2_500)
    agent = DQNConfig(loss="huber", double_dqn=True)
else:
    run = RunConfig(env_id="CartPole-v1", seed=args.seed, total_steps=200_000, num_envs=8, eval_every=8_192)
    agent = PGConfig(baseline="value", gae_lambda=0.95)

# 2. The loop builds the vector env and the agent, trains, evaluates, logs and checkpoints.
result = train(args.algo, run, agent)
print(f"{result.run_dir}: {result.step:,} steps, last greedy eval {result.evals[-1].mean:.1f}")

# 3. Back from the checkpoint: a fresh env, greedy actions of the trained network.
_, run, trained, _, _ = load_agent(result.run_dir, num_envs=20)
env = envs.make_vec_env(run.env_id, num_envs=20, seed=123)
returns = evaluate(trained, env, seed=123)
print(f"20 greedy episodes on fresh envs: {np.mean(returns):.1f} ± {np.std(returns):.1f}")
