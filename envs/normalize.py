"""Observation normalization across envs: find an env's ``NormalizeObservation`` layer and freeze it.

Evaluation envs must see observations scaled exactly as the policy saw them in training, so their
normalizer is set to the training statistics and stops updating; otherwise greedy evaluation would
shift the statistics it is being judged by.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.wrappers.vector import NormalizeObservation

__all__ = ["obs_normalizer", "freeze_normalizer", "sync_normalizer", "normalize_frozen"]


def obs_normalizer(env: gym.vector.VectorEnv) -> NormalizeObservation | None:
    """The NormalizeObservation layer of ``env``, or None."""
    while isinstance(env, gym.vector.VectorWrapper):
        if isinstance(env, NormalizeObservation):
            return env
        env = env.env
    return None


def freeze_normalizer(env: gym.vector.VectorEnv, mean: np.ndarray, var: np.ndarray,
                      count: float | None = None) -> None:
    """Set ``env``'s normalizer to these statistics (copied) and stop it updating; no-op without one.

    ``count`` only matters if the normalizer is ever unfrozen; None leaves it as it is.
    """
    norm = obs_normalizer(env)
    if norm is None:
        return
    norm.obs_rms.mean = np.array(mean, copy=True)
    norm.obs_rms.var = np.array(var, copy=True)
    if count is not None:
        norm.obs_rms.count = count
    norm.update_running_mean = False


def sync_normalizer(eval_env: gym.vector.VectorEnv, train_env: gym.vector.VectorEnv) -> None:
    """Copy the training statistics into the evaluation env and freeze them there."""
    src = obs_normalizer(train_env)
    if src is None:
        return
    freeze_normalizer(eval_env, src.obs_rms.mean, src.obs_rms.var, src.obs_rms.count)


def normalize_frozen(obs: np.ndarray, mean: np.ndarray, var: np.ndarray, epsilon: float = 1e-8) -> np.ndarray:
    """Observations scaled as a frozen ``NormalizeObservation`` scales them (its formula and float32
    result), for acting outside an env (``Run.predict``)."""
    return ((obs - mean) / np.sqrt(var + epsilon)).astype(np.float32)
