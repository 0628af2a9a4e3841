"""Greedy evaluation: the return of one episode per sub-env, acting with ``agent.act(obs, greedy=True)``."""

from __future__ import annotations

import numpy as np


def evaluate(agent, env, seed: int, max_steps: int = 100_000) -> np.ndarray:
    """Greedy returns of one episode per sub-env of ``env`` (reset with ``seed``)."""
    obs, _ = env.reset(seed=seed)
    returns = np.full(env.num_envs, np.nan)
    for _ in range(max_steps):
        obs, _, _, _, info = env.step(agent.act(obs, greedy=True))
        if "_episode" in info:
            fresh = info["_episode"] & np.isnan(returns)
            returns[fresh] = info["episode"]["r"][fresh]
            if not np.isnan(returns).any():
                break
    return returns[~np.isnan(returns)]
