"""What one SAC gradient step costs, by network size and batch: the figures behind the presets' sizes.

    python experiments/bench_sac.py [--env Pendulum-v1] [--sizes 64,128,256] [--batches 64,128,256] [--steps 300]

For each (hidden width h, two hidden layers, actor and critics alike; batch B): µs per ``SACAgent.update`` on a
filled buffer of the env's dimensions, and that step's parts, each timed alone with the same calls the
update makes (critic target, the two critic steps, the actor step, the temperature step, the two Polyak
updates). An env step adds its ``act`` and the env itself: SPS of a run is about 1e6 / (update + act + env).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import experiments  # noqa: E402,F401  (first: one BLAS thread)
import numpy as np  # noqa: E402

import envs  # noqa: E402
from agents.base import EnvInfo  # noqa: E402
from agents.sac import SACAgent, SACConfig  # noqa: E402


def filled_agent(info: EnvInfo, width: int, batch: int, seed: int = 0) -> SACAgent:
    agent = SACAgent(SACConfig(hidden_sizes=[width, width], batch_size=batch, learning_starts=0),
                     info, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    n, d, m = 4 * batch, info.obs_dim, info.action_dim
    obs = rng.normal(size=(n, d)).astype(np.float32)
    agent.observe(obs, rng.uniform(info.action_low, info.action_high, (n, m)), rng.normal(size=n), obs,
                  rng.random(n) < 0.01, np.zeros(n, bool), np.ones(n, bool))
    return agent


def per_call(fn, steps: int) -> float:
    """Median over 5 repeats of µs per call of ``fn`` (``steps`` calls each)."""
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        times.append((time.perf_counter() - t) / steps * 1e6)
    return float(np.median(times))


def parts(agent: SACAgent) -> dict[str, callable]:
    """The update's pieces as separate calls (same inputs as one update)."""
    c, d = agent.config, agent.env_info.obs_dim
    obs, actions, rewards, next_obs, terminated = (x.copy() for x in agent.buffer.sample(c.batch_size, agent.rng))
    noise = agent.rng.standard_normal((2, c.batch_size, agent.env_info.action_dim), dtype=agent.dtype)
    sa = np.concatenate((obs, actions), axis=1)

    def target():
        next_actions, next_log_probs = agent.head.sample(agent.actor.predict(next_obs), noise[0])
        next_sa = np.concatenate((next_obs, next_actions), axis=1)
        q_next = np.minimum(agent.q1_target.predict(next_sa), agent.q2_target.predict(next_sa))[:, 0]
        return rewards + c.gamma * (1.0 - terminated) * (q_next - 0.1 * next_log_probs)

    y = target()
    return {
        "sample": lambda: agent.buffer.sample(c.batch_size, agent.rng),
        "critic target": target,
        "critic steps (2)": lambda: [(agent.critic_loss_and_grad(q, sa, y), opt.step())
                                     for q, opt in ((agent.q1, agent.q1_opt), (agent.q2, agent.q2_opt))],
        "actor step": lambda: (agent.actor_loss_and_grad(obs, noise[1], 0.1), agent.actor_opt.step()),
        "Polyak (2)": lambda: (agent.q1_target.soft_update(agent.q1, c.tau), agent.q2_target.soft_update(agent.q2, c.tau)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--sizes", default="64,128,256")
    p.add_argument("--batches", default="64,128,256")
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    probe = envs.make_vec_env(args.env, 1, seed=0)
    info = EnvInfo.from_env(probe)
    probe.close()
    names = None
    print(f"SAC gradient step on {args.env} (obs {info.obs_dim}, actions {info.action_dim}), µs per call, "
          f"median of 5 x {args.steps}\n")
    for width in (int(w) for w in args.sizes.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            agent = filled_agent(info, width, batch)
            pieces = parts(agent)
            if names is None:
                names = list(pieces)
                print("| hidden | batch | update | " + " | ".join(names) + " | act (1 obs) |")
                print("|---|---|---|" + "---|" * len(names) + "---|")
            obs = np.zeros((1, info.obs_dim), np.float32)
            cells = [per_call(agent.update, args.steps)] + [per_call(fn, args.steps) for fn in pieces.values()]
            cells.append(per_call(lambda: agent.act(obs, step=1), args.steps * 10))
            print(f"| {width}x{width} | {batch} | " + " | ".join(f"{c:,.0f}" for c in cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
