"""Building Gymnasium environments for rlnn, and saving their state for exact resume.

Every training env is a Gymnasium *vector* env in ``AutoresetMode.NEXT_STEP``: after an episode ends,
the following ``step`` call returns the reset observation with reward 0 and both flags False, and the
action passed to it is ignored. That row is not a real transition; the run loop masks it out (see
``agents.loop``). NEXT_STEP is the one mode every Gymnasium vector env and vector observation wrapper
supports, and the fast NumPy ``CartPoleVectorEnv`` supports nothing else, so we use it everywhere.

Layers, innermost first: the vector env (the registered ``vector_entry_point`` where one exists, else
``SyncVectorEnv``), ``EpisodeStatistics`` (Gymnasium's ``RecordEpisodeStatistics`` with a leaner
step; episode return/length in ``info["episode"]``),
optionally ``NormalizeObservation`` (running mean/variance of observations).
"""

from __future__ import annotations

import difflib
import json
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import NormalizeObservation, RecordEpisodeStatistics

__all__ = [
    "EnvError",
    "check_env_id",
    "check_spaces",
    "make_env",
    "make_vec_env",
    "make_eval_env",
    "env_state",
    "load_env_state",
    "obs_normalizer",
    "EpisodeStatistics",
]


class EnvError(ValueError):
    """A user-facing problem with an environment: unknown id, unsupported spaces."""


class EpisodeStatistics(RecordEpisodeStatistics):
    """Gymnasium's vector ``RecordEpisodeStatistics``, with the NEXT_STEP step made lean.

    Same attributes, same ``info["episode"]`` / ``info["_episode"]``, same queues: everything that
    reads or restores the parent works on it. The parent updates its arrays through six boolean
    masks on every step, which costs ~43 us per step at one env here, more than CartPole's
    SyncVectorEnv step itself (~33 us); masks are only needed on the rare step that follows an
    episode end. ``tests/test_envs.py`` checks it against the parent, step for step.
    """

    def step(self, actions):
        if self._autoreset_mode != AutoresetMode.NEXT_STEP:
            return super().step(actions)
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        prev = self.prev_dones
        if prev.any():      # these sub-envs just reset: their row is not part of any episode
            live = ~prev
            self.episode_returns[prev] = 0
            self.episode_returns[live] += rewards[live]
            self.episode_lengths[prev] = 0
            self.episode_lengths[live] += 1
            self.episode_start_times[prev] = time.perf_counter()
        else:
            self.episode_returns += rewards
            self.episode_lengths += 1
        self.prev_dones = dones = np.logical_or(terminations, truncations)
        if dones.any():
            key = self._stats_key
            if key in infos or f"_{key}" in infos:
                raise ValueError(f"Attempted to add episode stats with key '{key}' but this key already "
                                 f"exists in info: {list(infos.keys())}")
            episode_time_length = np.round(time.perf_counter() - self.episode_start_times, 6)
            infos[key] = {"r": np.where(dones, self.episode_returns, 0.0),
                          "l": np.where(dones, self.episode_lengths, 0),
                          "t": np.where(dones, episode_time_length, 0.0)}
            infos[f"_{key}"] = dones
            self.episode_count += int(np.count_nonzero(dones))
            self.time_queue.extend(episode_time_length[dones])
            self.return_queue.extend(self.episode_returns[dones])
            self.length_queue.extend(self.episode_lengths[dones])
        return observations, rewards, terminations, truncations, infos


def check_env_id(env_id: str) -> None:
    """Raise EnvError naming close matches when ``env_id`` is not registered."""
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.pprint_registry()"
    raise EnvError(f"unknown environment id {env_id!r}{hint}")


def check_spaces(observation_space: gym.Space, action_space: gym.Space, discrete_actions: bool = True) -> None:
    """Our MLP agents need a flat Box observation and (for pg/dqn) a Discrete action space."""
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise EnvError(f"observation space {observation_space} is not supported: a flat Box of shape (n,) is required")
    if discrete_actions and not isinstance(action_space, gym.spaces.Discrete):
        raise EnvError(f"action space {action_space} is not supported: a Discrete action space is required")


def make_env(env_id: str, seed: int | None = None, **kwargs: Any) -> gym.Env:
    """One single (non-vector) env, e.g. for rendering; reset once with ``seed``."""
    check_env_id(env_id)
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def make_vec_env(
    env_id: str,
    num_envs: int,
    seed: int,
    normalize_obs: bool = False,
    vectorization_mode: str = "auto",
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """A NEXT_STEP vector env with episode statistics (seed it with ``env.reset(seed=...)``).

    ``vectorization_mode``: "auto" takes the registered NumPy vector env where one exists and
    ``num_envs >= 4``, else ``SyncVectorEnv``; "sync" and "vector_entry_point" force one.
    """
    check_env_id(env_id)
    if num_envs < 1:
        raise EnvError(f"num_envs={num_envs} is not allowed: it must be at least 1")
    if vectorization_mode not in ("auto", "sync", "vector_entry_point"):
        raise EnvError(f"vectorization_mode={vectorization_mode!r} is not allowed: use auto, sync or vector_entry_point")
    mode = vectorization_mode
    if mode == "auto":
        # Measured here (CartPole, µs per call at n = 1/4/8/16): sync 37/67/116/209, NumPy vector
        # 76/76/78/79. The NumPy env's cost is fixed per call, so it only wins from about 4 envs on.
        has_vector = gym.registry[env_id].vector_entry_point is not None
        mode = "vector_entry_point" if has_vector and num_envs >= 4 else "sync"
    if mode == "sync":
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                           vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP}, **kwargs)
    else:
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    if env.metadata.get("autoreset_mode") != AutoresetMode.NEXT_STEP:
        raise EnvError(f"{env_id}: vector env autoreset mode {env.metadata.get('autoreset_mode')} is not NEXT_STEP")
    env = EpisodeStatistics(env)
    if normalize_obs:
        env = NormalizeObservation(env)
    env.action_space.seed(seed)
    return env


def make_eval_env(env_id: str, num_envs: int, train_env: gym.vector.VectorEnv | None = None,
                  **kwargs: Any) -> gym.vector.VectorEnv:
    """An env for greedy evaluation: one episode per sub-env, normalization frozen at the training stats."""
    normalizer = obs_normalizer(train_env) if train_env is not None else None
    env = make_vec_env(env_id, num_envs, seed=0, normalize_obs=normalizer is not None, **kwargs)
    if normalizer is not None:
        sync_normalizer(env, train_env)
    return env


def obs_normalizer(env: gym.vector.VectorEnv) -> NormalizeObservation | None:
    """The NormalizeObservation layer of ``env``, or None."""
    while isinstance(env, gym.vector.VectorWrapper):
        if isinstance(env, NormalizeObservation):
            return env
        env = env.env
    return None


def sync_normalizer(eval_env: gym.vector.VectorEnv, train_env: gym.vector.VectorEnv) -> None:
    """Copy the training statistics into the evaluation env and freeze them there."""
    src, dst = obs_normalizer(train_env), obs_normalizer(eval_env)
    if src is None or dst is None:
        return
    dst.obs_rms.mean = src.obs_rms.mean.copy()
    dst.obs_rms.var = src.obs_rms.var.copy()
    dst.obs_rms.count = src.obs_rms.count
    dst.update_running_mean = False


def _layers(env: gym.vector.VectorEnv) -> list:
    layers = []
    while isinstance(env, gym.vector.VectorWrapper):
        layers.append(env)
        env = env.env
    layers.append(env)
    return layers


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(str(state))


def env_state(env: gym.vector.VectorEnv) -> dict[str, np.ndarray]:
    """Everything needed to continue ``env`` exactly where it is, as plain arrays (no pickling).

    Exact for the NumPy CartPole vector env and for sync vector envs of classic-control envs (whose
    whole physical state is ``unwrapped.state``); for others ``exact`` is False and a resume resets them.
    """
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
            out["sync/autoreset_envs"] = layer._autoreset_envs.copy()
            for i, sub in enumerate(layer.envs):
                base = sub.unwrapped
                state = getattr(base, "state", None)
                if state is None or not np.all(np.isfinite(np.asarray(state, dtype=np.float64))):
                    exact = False
                    continue
                out[f"sub{i}/state"] = np.asarray(state, dtype=np.float64).copy()
                out[f"sub{i}/rng"] = np.asarray(_rng_state(base.np_random))
                elapsed = _find_attr(sub, "_elapsed_steps")
                if elapsed is not None:
                    out[f"sub{i}/elapsed_steps"] = np.asarray(elapsed)
                extra = getattr(base, "steps_beyond_terminated", None)
                out[f"sub{i}/steps_beyond_terminated"] = np.asarray(-1 if extra is None else extra)
        elif hasattr(layer, "prev_done") and hasattr(layer, "state") and hasattr(layer, "steps"):
            # NumPy vector envs (CartPoleVectorEnv): the whole state is these four things.
            out["vec/state"] = np.asarray(layer.state).copy()
            out["vec/steps"] = layer.steps.copy()
            out["vec/prev_done"] = layer.prev_done.copy()
            out["vec/rng"] = np.asarray(_rng_state(layer.np_random))
        else:
            exact = False
    out["exact"] = np.asarray(exact)
    return out


def _find_attr(env: gym.Env, name: str) -> Any:
    while True:
        if name in vars(env):
            return getattr(env, name)
        if not hasattr(env, "env"):
            return None
        env = env.env


def _set_attr(env: gym.Env, name: str, value: Any) -> None:
    while True:
        if name in vars(env):
            setattr(env, name, value)
            return
        if not hasattr(env, "env"):
            return
        env = env.env


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
            layer._autoreset_envs = state["sync/autoreset_envs"].copy()
            for i, sub in enumerate(layer.envs):
                base = sub.unwrapped
                base.state = state[f"sub{i}/state"].copy()
                _set_rng_state(base.np_random, state[f"sub{i}/rng"])
                if f"sub{i}/elapsed_steps" in state:
                    _set_attr(sub, "_elapsed_steps", int(state[f"sub{i}/elapsed_steps"]))
                extra = int(state[f"sub{i}/steps_beyond_terminated"])
                if hasattr(base, "steps_beyond_terminated"):
                    base.steps_beyond_terminated = None if extra < 0 else extra
        elif "vec/state" in state and hasattr(layer, "prev_done"):
            layer.state = state["vec/state"].copy()
            layer.steps = state["vec/steps"].copy()
            layer.prev_done = state["vec/prev_done"].copy()
            _set_rng_state(layer.np_random, state["vec/rng"])
    return bool(state["exact"])
