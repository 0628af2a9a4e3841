"""n-step transitions for DQN: fold up to n consecutive rewards of an env into one replay row.

Per env, the last n real transitions wait here. A transition leaves as

    (s_t, a_t, R = r_t + gamma r_{t+1} + ... + gamma^(m-1) r_{t+m-1}, s_{t+m}, bootstrap = gamma^m)

with m = n, or fewer when the episode ends first: then every waiting transition leaves at once, and
bootstraps through ``s_{t+m}`` (the true final observation) if the episode was truncated, not if it
terminated (bootstrap = 0). The TD target is then y = R + bootstrap * Q_target(s_{t+m}, a*).

The replay buffer keeps one-step rows (reward, terminated) and computes y = r + gamma (1 - terminated) Q.
So the row stores ``terminated = 1 - bootstrap / gamma``: 1 for a terminal row, 0 for m = 1, and
1 - gamma^(m-1) otherwise, and the one-step formula gives the n-step target unchanged.

Rows with ``valid = False`` (the no-op reset step of NEXT_STEP autoreset) are skipped. The waiting
transitions are part of the agent's checkpoint (``state_dict``), so a resumed run continues bit for bit.
"""

from __future__ import annotations

import numpy as np


class NStepQueue:
    def __init__(self, n: int, num_envs: int, obs_dim: int, gamma: float, obs_dtype=np.float32):
        if n < 1:
            raise ValueError(f"n-step must be at least 1, got {n}")
        self.n, self.gamma = int(n), float(gamma)
        self.obs = np.zeros((num_envs, n, obs_dim), obs_dtype)
        self.actions = np.zeros((num_envs, n), np.int64)
        self.rewards = np.zeros((num_envs, n), np.float64)
        self.count = np.zeros(num_envs, np.int64)          # transitions waiting per env
        self.powers = gamma ** np.arange(n)                 # 1, gamma, ..., gamma^(n-1)
        self._steady = self._is_steady()

    def _is_steady(self) -> bool:
        """Every env has n - 1 transitions waiting: a step that ends no episode moves each queue by one."""
        return bool((self.count == self.n - 1).all())

    def add(self, obs, actions, rewards, next_obs, terminated, truncated, valid) -> tuple[np.ndarray, ...]:
        """Queue one vector step (arrays with a leading env axis) and return the rows that leave:
        (obs, actions, R, next_obs, terminated column), each with a leading row axis (maybe 0 rows)."""
        if self._steady and valid.all() and not (terminated.any() or truncated.any()):
            return self._add_steady(obs, actions, rewards, next_obs)
        rows = self._add(obs, actions, rewards, next_obs, terminated, truncated, valid)
        self._steady = self._is_steady()
        return rows

    def _add_steady(self, obs, actions, rewards, next_obs) -> tuple[np.ndarray, ...]:
        """``_add`` of a step in which every env is valid, none ends and each has n - 1 waiting (most
        steps): the same rows from the same arithmetic, with slices where ``_add`` indexes env lists."""
        last = self.n - 1
        self.obs[:, last] = obs
        self.actions[:, last] = actions
        self.rewards[:, last] = rewards
        rows = (self.obs[:, 0].copy(), self.actions[:, 0].copy(), self.rewards @ self.powers,
                next_obs.copy(), np.full(len(next_obs), 1 - self.powers[-1]))
        self.obs[:, :-1] = self.obs[:, 1:]
        self.actions[:, :-1] = self.actions[:, 1:]
        self.rewards[:, :-1] = self.rewards[:, 1:]
        return rows

    def _add(self, obs, actions, rewards, next_obs, terminated, truncated, valid) -> tuple[np.ndarray, ...]:
        envs = np.flatnonzero(valid)
        slot = self.count[envs]
        self.obs[envs, slot] = obs[envs]
        self.actions[envs, slot] = actions[envs]
        self.rewards[envs, slot] = rewards[envs]
        self.count[envs] += 1
        done = np.zeros(len(self.count), bool)
        done[envs] = np.asarray(terminated, bool)[envs] | np.asarray(truncated, bool)[envs]
        full = np.flatnonzero((self.count == self.n) & ~done)
        out = [self._oldest(full, next_obs)]
        for env in np.flatnonzero(done):
            out.append(self._all(env, next_obs[env], bool(terminated[env])))
        return tuple(np.concatenate(parts) for parts in zip(*out))

    def _oldest(self, envs: np.ndarray, next_obs: np.ndarray) -> tuple[np.ndarray, ...]:
        """The oldest of n waiting transitions of each env in ``envs`` (not at an episode end)."""
        rows = (self.obs[envs, 0].copy(), self.actions[envs, 0].copy(), self.rewards[envs] @ self.powers,
                next_obs[envs], np.full(len(envs), 1 - self.powers[-1]))
        self.obs[envs, :-1] = self.obs[envs, 1:]
        self.actions[envs, :-1] = self.actions[envs, 1:]
        self.rewards[envs, :-1] = self.rewards[envs, 1:]
        self.count[envs] -= 1
        return rows

    def _all(self, env: int, final_obs: np.ndarray, terminated: bool) -> tuple[np.ndarray, ...]:
        """Every waiting transition of ``env``, whose episode just ended with ``final_obs``."""
        m = int(self.count[env])
        r = self.rewards[env, :m]
        # R_j = sum_{k >= j} gamma^(k - j) r_k, the discounted sum from each row to the episode's end.
        returns = np.array([r[j:] @ self.powers[:m - j] for j in range(m)])
        left = m - np.arange(m)                                  # steps from row j to the end
        term = np.ones(m) if terminated else 1 - self.powers[left - 1]
        self.count[env] = 0
        return (self.obs[env, :m].copy(), self.actions[env, :m].copy(), returns,
                np.repeat(final_obs[None], m, axis=0), term)

    def clear(self) -> None:
        """Drop every waiting transition (a resume without the replay buffer starts afresh)."""
        self.count[:] = 0
        self._steady = self._is_steady()

    def state_dict(self) -> dict:
        return {"obs": self.obs.copy(), "actions": self.actions.copy(), "rewards": self.rewards.copy(),
                "count": self.count.copy()}

    def load_state_dict(self, state: dict) -> None:
        for key in ("obs", "actions", "rewards", "count"):
            value = getattr(self, key)
            if np.shape(state[key]) != value.shape:
                raise ValueError(f"n-step queue {key} has shape {np.shape(state[key])}, expected {value.shape}")
            value[...] = state[key]
        self._steady = self._is_steady()
