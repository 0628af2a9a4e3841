"""Train CartPole agents from a script, as with Stable-Baselines3: train, look, evaluate, reload.

    python experiments/train_cartpole.py [--algo dqn|pg] [--seed 0]
"""

import argparse

import experiments  # noqa: F401  (one BLAS thread: tiny networks)
import agents

parser = argparse.ArgumentParser()
parser.add_argument("--algo", choices=["dqn", "pg"], default="dqn")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

# 1. The tuned preset (experiments/configs/cartpole_{algo}.toml), with changes of our own on top.
changes = {"run.eval_every": 5_000}
run = agents.train(args.algo, env="CartPole-v1", seed=args.seed, set=changes)
print(f"{run.run_dir}: {run.step:,} steps, last greedy eval {run.evals[-1].mean:.1f}")

# 2. Greedy episodes on fresh envs, and one action.
returns = run.evaluate(episodes=20, seed=123)
print(f"20 greedy episodes on fresh envs: {returns.mean():.1f} ± {returns.std():.1f}")
print("action for a cart at rest:", run.predict([0.0, 0.0, 0.0, 0.0], deterministic=True)[0])

# 3. Back from disk, later or elsewhere: the latest checkpoint, ready to act.
again = agents.load(run.run_dir)
assert again.predict([0.0, 0.0, 0.0, 0.0], deterministic=True) == run.predict([0.0, 0.0, 0.0, 0.0], deterministic=True)
