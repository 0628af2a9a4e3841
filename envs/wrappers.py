"""Vector-env wrappers of our own: ``EpisodeStatistics``, a faster drop-in for Gymnasium's."""

from __future__ import annotations

import time

import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import RecordEpisodeStatistics

__all__ = ["EpisodeStatistics"]


class EpisodeStatistics(RecordEpisodeStatistics):
    """Gymnasium's vector ``RecordEpisodeStatistics``, with the NEXT_STEP step made lean.

    Same attributes, same ``info["episode"]`` / ``info["_episode"]``, same queues: everything that
    reads or restores the parent works on it. The parent updates its arrays through six boolean
    masks on every step, which costs more than CartPole's SyncVectorEnv step itself; masks are only
    needed on the rare step that follows an episode end. ``tests/test_envs.py`` checks it against the parent, step for step.
    """

    def step(self, actions):
        if self._autoreset_mode != AutoresetMode.NEXT_STEP:
            return super().step(actions)
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        prev = self.prev_dones
        # np.count_nonzero, not .any(): the method goes through a Python reduction wrapper, a few times slower
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
