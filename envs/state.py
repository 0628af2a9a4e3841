"""Saving and restoring a vector env's state as plain arrays, so a resumed run continues bit for bit.

``env_state(env)`` returns a flat ``{key: ndarray}`` dict (no pickling) and ``load_env_state(env, state)``
puts it back into a freshly made, reset env built the same way. Restored exactly:

- the NumPy CartPole vector env (``CartPoleVectorEnv``, or any vector env with ``state``, ``steps``
  and ``prev_done``): its state, step counts, pending resets and RNG;
- ``SyncVectorEnv`` of envs whose whole physical state is ``unwrapped.state`` (the classic-control
  envs, e.g. CartPole, Acrobot, MountainCar, Pendulum): that state, the RNG, the ``TimeLimit`` step
  count, CartPole's ``steps_beyond_terminated`` and the pending-autoreset flags;
- always, whatever the env: ``RecordEpisodeStatistics`` / ``EpisodeStatistics`` counters and
  ``NormalizeObservation`` statistics.

Anything else (another vector env, a sub-env without a finite ``state``) makes ``state["exact"]``
False; ``load_env_state`` then restores only the statistics and the caller resets the env.

Keys: ``stats/*``, ``norm/mean|var|count``, ``sync/autoreset_envs``, ``sub{i}/*``, ``vec/*``, ``exact``.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers.vector import NormalizeObservation, RecordEpisodeStatistics

__all__ = ["env_state", "load_env_state"]


# Gymnasium has no public API to read or set a vector env's pending autoresets or a TimeLimit's step
# count, yet both decide what the next step returns; so these helpers reach the private attributes.

def _autoreset_flags(sync: gym.vector.SyncVectorEnv) -> np.ndarray:
    return sync._autoreset_envs


def _set_autoreset_flags(sync: gym.vector.SyncVectorEnv, flags: np.ndarray) -> None:
    sync._autoreset_envs = flags


def _elapsed_steps(env: gym.Env) -> int | None:
    """The ``TimeLimit`` step count of ``env`` or of a wrapper under it; None without a TimeLimit."""
    owner = _owner_of(env, "_elapsed_steps")
    return None if owner is None else owner._elapsed_steps


def _set_elapsed_steps(env: gym.Env, steps: int) -> None:
    owner = _owner_of(env, "_elapsed_steps")
    if owner is not None:
        owner._elapsed_steps = steps


def _owner_of(env: gym.Env, name: str) -> gym.Env | None:
    """The outermost wrapper (or env) that has ``name`` as its own attribute, not a forwarded one."""
    while True:
        if name in vars(env):
            return env
        if not hasattr(env, "env"):
            return None
        env = env.env


def _layers(env: gym.vector.VectorEnv) -> list:
    layers = []
    while isinstance(env, gym.vector.VectorWrapper):
        layers.append(env)
        env = env.env
    layers.append(env)
    return layers


def _is_numpy_vector_env(layer: Any) -> bool:
    # CartPoleVectorEnv keeps its whole state in these three arrays (plus its RNG).
    return hasattr(layer, "prev_done") and hasattr(layer, "state") and hasattr(layer, "steps")


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(str(state))


def env_state(env: gym.vector.VectorEnv) -> dict[str, np.ndarray]:
    """Everything needed to continue ``env`` exactly where it is, as plain arrays (see the module doc)."""
    out: dict[str, np.ndarray] = {}
    exact = True
    for layer in _layers(env):
        if isinstance(layer, RecordEpisodeStatistics):
            out["stats/episode_returns"] = layer.episode_returns.copy()
            out["stats/episode_lengths"] = layer.episode_lengths.copy()
            out["stats/prev_dones"] = layer.prev_dones.copy()
            out["stats/episode_count"] = np.asarray(layer.episode_count)
        elif isinstance(layer, NormalizeObservation):
            out["norm/mean"] = np.asarray(layer.obs_rms.mean).copy()
            out["norm/var"] = np.asarray(layer.obs_rms.var).copy()
            out["norm/count"] = np.asarray(layer.obs_rms.count)
        elif isinstance(layer, gym.vector.SyncVectorEnv):
            exact = _save_sync(layer, out) and exact
        elif _is_numpy_vector_env(layer):
            out["vec/state"] = np.asarray(layer.state).copy()
            out["vec/steps"] = layer.steps.copy()
            out["vec/prev_done"] = layer.prev_done.copy()
            out["vec/rng"] = np.asarray(_rng_state(layer.np_random))
        else:
            exact = False
    out["exact"] = np.asarray(exact)
    return out


def _save_sync(sync: gym.vector.SyncVectorEnv, out: dict[str, np.ndarray]) -> bool:
    """Add ``sync``'s state to ``out``; False if some sub-env has no finite ``state`` (it is skipped)."""
    out["sync/autoreset_envs"] = _autoreset_flags(sync).copy()
    exact = True
    for i, sub in enumerate(sync.envs):
        base = sub.unwrapped
        state = getattr(base, "state", None)
        if state is None or not np.all(np.isfinite(np.asarray(state, dtype=np.float64))):
            exact = False
            continue
        out[f"sub{i}/state"] = np.asarray(state, dtype=np.float64).copy()
        out[f"sub{i}/rng"] = np.asarray(_rng_state(base.np_random))
        elapsed = _elapsed_steps(sub)
        if elapsed is not None:
            out[f"sub{i}/elapsed_steps"] = np.asarray(elapsed)
        extra = getattr(base, "steps_beyond_terminated", None)
        out[f"sub{i}/steps_beyond_terminated"] = np.asarray(-1 if extra is None else extra)
    return exact


def load_env_state(env: gym.vector.VectorEnv, state: dict[str, np.ndarray]) -> bool:
    """Restore what ``env_state`` saved into a freshly made (and reset) env; returns whether exact."""
    for layer in _layers(env):
        if isinstance(layer, RecordEpisodeStatistics) and "stats/episode_returns" in state:
            layer.episode_returns = state["stats/episode_returns"].copy()
            layer.episode_lengths = state["stats/episode_lengths"].copy()
            layer.prev_dones = state["stats/prev_dones"].copy()
            layer.episode_count = int(state["stats/episode_count"])
        elif isinstance(layer, NormalizeObservation) and "norm/mean" in state:
            layer.obs_rms.mean = state["norm/mean"].copy()
            layer.obs_rms.var = state["norm/var"].copy()
            layer.obs_rms.count = float(state["norm/count"])
        elif isinstance(layer, gym.vector.SyncVectorEnv) and bool(state["exact"]):
            _load_sync(layer, state)
        elif "vec/state" in state and hasattr(layer, "prev_done"):
            layer.state = state["vec/state"].copy()
            layer.steps = state["vec/steps"].copy()
            layer.prev_done = state["vec/prev_done"].copy()
            _set_rng_state(layer.np_random, state["vec/rng"])
    return bool(state["exact"])


def _load_sync(sync: gym.vector.SyncVectorEnv, state: dict[str, np.ndarray]) -> None:
    _set_autoreset_flags(sync, state["sync/autoreset_envs"].copy())
    for i, sub in enumerate(sync.envs):
        base = sub.unwrapped
        base.state = state[f"sub{i}/state"].copy()
        _set_rng_state(base.np_random, state[f"sub{i}/rng"])
        if f"sub{i}/elapsed_steps" in state:
            _set_elapsed_steps(sub, int(state[f"sub{i}/elapsed_steps"]))
        extra = int(state[f"sub{i}/steps_beyond_terminated"])
        if hasattr(base, "steps_beyond_terminated"):
            base.steps_beyond_terminated = None if extra < 0 else extra
