"""Vector-env wrappers of our own: ``EpisodeStatistics``, a faster drop-in for Gymnasium's."""

from __future__ import annotations

import time

import numpy as np
from gymnasium.spaces import Box, MultiBinary, MultiDiscrete
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

__all__ = ["EpisodeStatistics"]

# The SyncVectorEnv attributes _sync_step reads and writes (Gymnasium 1.x); without them it is not used.
_SYNC_STATE = ("envs", "copy", "_env_obs", "_observations", "_rewards", "_terminations", "_truncations",
               "_autoreset_envs", "_add_info")


class EpisodeStatistics(RecordEpisodeStatistics):
    """Gymnasium's vector ``RecordEpisodeStatistics``, with the NEXT_STEP step made lean.

    Same attributes, same ``info["episode"]`` / ``info["_episode"]``, same queues: everything that
    reads or restores the parent works on it. The parent updates its arrays through six boolean
    masks on every step, which costs ~43 us per step at one env here, more than CartPole's
    SyncVectorEnv step itself (~33 us); masks are only needed on the rare step that follows an
    episode end. Over a plain ``SyncVectorEnv`` (NEXT_STEP, Box observations, array actions) the
    vector step itself is done here too (``_sync_step``): the same sub-env calls, state and results
    as ``SyncVectorEnv.step``, without its per-step dispatch and copies. ``tests/test_envs.py`` checks
    both against Gymnasium, step for step.
    """

    def __init__(self, env, buffer_length: int = 100, stats_key: str = "episode"):
        super().__init__(env, buffer_length=buffer_length, stats_key=stats_key)
        self._next_step = self._autoreset_mode == AutoresetMode.NEXT_STEP
        self._sync = env if self._next_step and _plain_sync(env) else None

    def step(self, actions):
        if not self._next_step:
            return super().step(actions)
        sync = self._sync
        if sync is not None and type(actions) is np.ndarray and len(actions) == sync.num_envs:
            observations, rewards, terminations, truncations, infos = _sync_step(sync, actions)
        else:
            observations, rewards, terminations, truncations, infos = self.env.step(actions)
        prev = self.prev_dones
        if np.count_nonzero(prev):      # these sub-envs just reset: their row is not part of any episode
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
        if np.count_nonzero(dones):
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


def _plain_sync(env) -> bool:
    """A SyncVectorEnv (not a subclass) whose step ``_sync_step`` reproduces: NEXT_STEP, Box
    observations (batched by np.stack) and actions Gymnasium iterates as ``iter(actions)``."""
    return (type(env) is SyncVectorEnv and env.autoreset_mode == AutoresetMode.NEXT_STEP
            and type(env.single_observation_space) is Box
            and type(env.action_space) in (Box, MultiDiscrete, MultiBinary)
            and all(hasattr(env, name) for name in _SYNC_STATE))


def _sync_step(sync: SyncVectorEnv, actions: np.ndarray):
    """``SyncVectorEnv.step`` in NEXT_STEP mode, written out for the case ``_plain_sync`` accepts.

    Sub-env i steps with ``actions[i]`` (what ``iterate`` yields), or resets if it ended on the last
    step; its results go into the same arrays, empty infos are not merged (merging one changes
    nothing), observations are stacked into ``_observations`` as ``concatenate`` does, and the returned
    arrays are copies as Gymnasium's. At one CartPole env this is ~10 us of the step's ~35 us less.
    """
    autoreset, env_obs, observations = sync._autoreset_envs, sync._env_obs, sync._observations
    rewards, terminations, truncations = sync._rewards, sync._terminations, sync._truncations
    infos: dict = {}
    stack = False
    for i, env in enumerate(sync.envs):
        if autoreset[i]:
            env_obs[i], info = env.reset()
            rewards[i] = 0.0
            terminations[i] = False
            truncations[i] = False
        else:
            env_obs[i], rewards[i], terminations[i], truncations[i], info = env.step(actions[i])
        if info:
            infos = sync._add_info(infos, info, i)
        obs = env_obs[i]
        if type(obs) is np.ndarray and obs.shape == observations.shape[1:]:
            np.copyto(observations[i], obs, casting="same_kind")    # row i of the np.stack below
        else:
            stack = True
    if stack:       # anything but an array of the row's shape: np.stack's checks and errors, as Gymnasium
        np.stack(env_obs, axis=0, out=observations)
    sync._autoreset_envs = np.logical_or(terminations, truncations)
    return (observations.copy() if sync.copy else observations, rewards.copy(), terminations.copy(),
            truncations.copy(), infos)
