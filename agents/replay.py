"""A preallocated NumPy ring buffer of transitions (obs, action, reward, next_obs, terminated).

Actions are integers (n,) for a Discrete action space (DQN), or float vectors (n, m) for a Box
(``action_dim = m``, SAC), stored in the same row as the observations (one gather per batch).

Only real transitions are stored: rows with ``valid=False`` (the no-op reset step of NEXT_STEP
autoreset) are dropped. ``next_obs`` is the true next observation, also the final one of an
episode, and ``terminated`` says whether it is terminal (a truncated transition is stored with
terminated=False, so the TD target bootstraps through it).

Sampling is uniform with replacement over the stored rows, from a generator the caller passes (the
agent's own, so a seed fixes everything). ``sample`` writes into preallocated batch arrays and
returns them: the arrays are overwritten by the next call.
"""

from __future__ import annotations

import numpy as np

FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated")


def _row_width(obs_dim: int) -> int:
    return 2 * obs_dim + 2      # [obs | next_obs | reward | terminated]


class ReplayBuffer:
    @staticmethod
    def nbytes(capacity: int, obs_dim: int, obs_dtype=np.float32, action_dim: int = 0) -> int:
        """Bytes the buffer's rows and integer actions take (before building it)."""
        width = _row_width(int(obs_dim)) + int(action_dim)
        actions = 0 if action_dim else np.dtype(np.int64).itemsize
        return int(capacity) * (width * np.dtype(obs_dtype).itemsize + actions)

    def __init__(self, capacity: int, obs_dim: int, obs_dtype=np.float32, batch_size: int = 0, action_dim: int = 0):
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be at least 1, got {capacity}")
        self.capacity, self.obs_dim, self.action_dim = int(capacity), int(obs_dim), int(action_dim)
        self.obs_dtype = np.dtype(obs_dtype)
        d, m = self.obs_dim, self.action_dim
        # One row per transition, [obs | next_obs | reward | terminated (| action vector)], so a batch is
        # one gather (np.take of rows) instead of four; obs, next_obs, rewards, terminated are views into it.
        self._rows = np.zeros((capacity, _row_width(d) + m), self.obs_dtype)
        self.obs = self._rows[:, :d]
        self.next_obs = self._rows[:, d:2 * d]
        self.rewards = self._rows[:, 2 * d]
        self.terminated = self._rows[:, 2 * d + 1]    # 1.0 / 0.0, ready for (1 - terminated)
        # Integer actions in their own array (exact, int64); float action vectors in the rows.
        self.actions = self._rows[:, 2 * d + 2:] if m else np.zeros(capacity, np.int64)
        self.pos = 0        # next row to write
        self.size = 0       # rows filled
        self.added = 0      # transitions ever added
        self._batch: dict[tuple[int, ...], tuple[np.ndarray, ...]] = {}
        if batch_size:
            self._batch_arrays((batch_size,))

    def __len__(self) -> int:
        return self.size

    def add(self, obs, actions, rewards, next_obs, terminated, valid=None) -> None:
        """Store rows i with valid[i] (all rows if valid is None); arrays have a leading batch axis."""
        if valid is not None and np.count_nonzero(valid) < len(valid):
            keep = np.asarray(valid, bool)
            obs, actions, rewards = obs[keep], actions[keep], rewards[keep]
            next_obs, terminated = next_obs[keep], terminated[keep]
        n = len(actions)
        if n == 0:
            return
        if n > self.capacity:  # only the newest rows fit
            obs, actions, rewards = obs[-self.capacity:], actions[-self.capacity:], rewards[-self.capacity:]
            next_obs, terminated = next_obs[-self.capacity:], terminated[-self.capacity:]
            self.added += n - self.capacity
            n = self.capacity
        p = self.pos
        if n == 1 and self.action_dim:   # one env, Box actions: the whole row in one call
            np.concatenate((obs[0], next_obs[0], rewards, terminated, actions[0]), out=self._rows[p],
                           casting="same_kind")
        elif n == 1:      # one env: the row [obs | next_obs | reward | terminated] in one call, then the action
            np.concatenate((obs[0], next_obs[0], rewards, terminated), out=self._rows[p], casting="same_kind")
            self.actions[p] = actions[0]
        elif p + n <= self.capacity:
            s = slice(p, p + n)
            self.obs[s] = obs
            self.next_obs[s] = next_obs
            self.actions[s] = actions
            self.rewards[s] = rewards
            self.terminated[s] = terminated
        else:
            idx = (p + np.arange(n)) % self.capacity
            self.obs[idx] = obs
            self.next_obs[idx] = next_obs
            self.actions[idx] = actions
            self.rewards[idx] = rewards
            self.terminated[idx] = terminated
        self.pos = (p + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.added += n

    def _batch_arrays(self, shape: tuple[int, ...]) -> tuple:
        """(uniform draws, row indices, gathered rows, actions, what sample returns) for ``shape``,
        made once: what sample returns are views of the gathered rows and the actions."""
        arrays = self._batch.get(shape)
        if arrays is None:
            d = self.obs_dim
            rows = np.empty(shape + self._rows.shape[1:], self.obs_dtype)
            actions = rows[..., 2 * d + 2:] if self.action_dim else np.empty(shape, np.int64)
            batch = (rows[..., :d], actions, rows[..., 2 * d], rows[..., d:2 * d], rows[..., 2 * d + 1])
            arrays = (np.empty(shape, np.float64), np.empty(shape, np.int64), rows, actions, batch)
            if len(self._batch) >= 4:
                self._batch.pop(next(iter(self._batch)))
            self._batch[shape] = arrays
        return arrays

    def sample(self, batch_size: int, rng: np.random.Generator, n_batches: int | None = None):
        """(obs, actions, rewards, next_obs, terminated) of ``batch_size`` uniform random rows.

        With ``n_batches``, that many independent batches at once, each array with a leading
        (n_batches, batch_size) shape (one random draw and one gather instead of n_batches). The
        returned arrays are views of buffers reused by the next call with the same shape.
        """
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        shape = (batch_size,) if n_batches is None else (n_batches, batch_size)
        uniform, idx, rows, actions, batch = self._batch_arrays(shape)
        # Row i = floor(u size) for u uniform in [0, 1): uniform over the rows, at half the cost of
        # rng.integers for a batch of 64 here. The multiply writes the truncated product straight into
        # the index array. u size < size always: u <= 1 - 2^-53, and size (1 - 2^-53) rounds to a
        # double below size (or is exact when size is a power of two).
        rng.random(out=uniform)
        np.multiply(uniform, self.size, out=idx, casting="unsafe")
        self._rows.take(idx, axis=0, out=rows)      # the methods: np.take adds a Python wrapper call
        if not self.action_dim:                     # Box actions came with the rows
            self.actions.take(idx, out=actions)
        return batch

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """The filled rows (not the empty tail) plus the write position."""
        n = self.size
        return {"obs": self.obs[:n].copy(), "actions": self.actions[:n].copy(),
                "rewards": self.rewards[:n].copy(), "next_obs": self.next_obs[:n].copy(),
                "terminated": self.terminated[:n].copy(), "pos": self.pos, "size": n,
                "added": self.added, "capacity": self.capacity}

    def load_state_dict(self, state: dict) -> None:
        capacity, n = int(state["capacity"]), int(state["size"])
        if capacity != self.capacity:
            raise ValueError(f"replay buffer capacity {capacity} in the state, {self.capacity} configured")
        if np.shape(state["obs"]) != (n, self.obs_dim):
            raise ValueError(f"replay buffer obs has shape {np.shape(state['obs'])}, expected {(n, self.obs_dim)}")
        if np.shape(state["actions"]) != self.actions[:n].shape:
            raise ValueError(f"replay buffer actions have shape {np.shape(state['actions'])}, "
                             f"expected {self.actions[:n].shape}")
        for key in FIELDS:
            getattr(self, key)[:n] = state[key]
        self.pos, self.size, self.added = int(state["pos"]), n, int(state["added"])

    def clear(self) -> None:
        self.pos = self.size = self.added = 0
