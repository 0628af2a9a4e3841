"""The on-policy rollout buffer of PG and PPO: time-major (T, n) storage of a vector rollout.

Per vector step t and sub-env i it stores obs, next_obs, actions, rewards, terminated, truncated and
valid (see ``agents.base`` for their meaning). ``add`` writes one vector step; once ``rollout_steps``
of them are in, ``ready`` is True, the learner reads the rows with ``batch()`` and ``reset()`` starts the
next rollout. The learner uses the rows it trusts (``agents.pg``); the buffer only keeps them.

Carry-over (``carry_unfinished=True``, for the baselines without a critic). An episode still running at
the end of a rollout has no known reward-to-go yet, so ``reset()`` keeps its rows: they move to the top
of their column and the next rollout's steps are written below them. Columns then have different
lengths::

    column i holds rows [0, offset[i] + t): offset[i] carried-over rows, then the t new steps

and ``batch()`` pads the shorter columns to T = max length with rows that are invalid (and not
terminated, not truncated, reward 0). The storage grows when an episode outlasts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FIELDS = ("obs", "next_obs", "actions", "rewards", "terminated", "truncated", "valid")


@dataclass
class Rollout:
    """The rows of one update, time-major: T rows of n columns (rows past a column's length are padding).

    obs, next_obs (T, n, d) are views of the buffer; actions (T, n) or (T, n, m) too. rewards (T, n) float64 and the
    flags terminated, truncated, valid (T, n) bool are copies, zero / False on the padding.
    """

    obs: np.ndarray
    next_obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray
    lengths: np.ndarray          # (n,) rows of each column: carried-over plus new

    @property
    def shape(self) -> tuple[int, int]:
        return self.valid.shape


class RolloutBuffer:
    def __init__(self, rollout_steps: int, num_envs: int, obs_dim: int, obs_dtype=np.float32,
                 carry_unfinished: bool = False, action_shape: tuple[int, ...] = (), action_dtype=np.int64):
        self.rollout_steps, self.num_envs, self.obs_dim = int(rollout_steps), int(num_envs), int(obs_dim)
        self.obs_dtype = np.dtype(obs_dtype)
        self.action_shape, self.action_dtype = tuple(action_shape), np.dtype(action_dtype)
        self.carry_unfinished = carry_unfinished
        self.t = 0                                       # add() calls since the last reset()
        self.offset = np.zeros(num_envs, np.int64)       # carried-over rows at the top of each column
        self._cols = np.arange(num_envs)
        self._alloc(self.rollout_steps)
        self._sync_layout()

    @staticmethod
    def _layout(cap: int, n: int, d: int, obs_dtype, action_shape: tuple[int, ...] = (),
                action_dtype=np.int64) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Each array's (shape, dtype) for ``cap`` rows of ``n`` columns of ``d``-dimensional observations."""
        return {"obs": ((cap, n, d), obs_dtype), "next_obs": ((cap, n, d), obs_dtype),
                "actions": ((cap, n, *action_shape), action_dtype), "rewards": ((cap, n), np.float64),
                "terminated": ((cap, n), bool), "truncated": ((cap, n), bool), "valid": ((cap, n), bool)}

    @classmethod
    def nbytes(cls, rollout_steps: int, num_envs: int, obs_dim: int, obs_dtype=np.float32,
               action_shape: tuple[int, ...] = (), action_dtype=np.int64) -> int:
        """Bytes of a buffer's arrays (before building it)."""
        layout = cls._layout(int(rollout_steps), int(num_envs), int(obs_dim), obs_dtype, tuple(action_shape), action_dtype)
        return sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in layout.values())

    def _alloc(self, cap: int, keep: int = 0) -> None:
        """Storage for ``cap`` rows per column, keeping the first ``keep`` rows."""
        new = {key: np.zeros(shape, dtype) for key, (shape, dtype) in self._layout(
            cap, self.num_envs, self.obs_dim, self.obs_dtype, self.action_shape, self.action_dtype).items()}
        if keep:
            for key, arr in new.items():
                arr[:keep] = getattr(self, key)[:keep]
        for key, arr in new.items():
            setattr(self, key, arr)
        self.cap = cap

    def _sync_layout(self) -> None:
        """Cache what add() needs: rows left per column, and whether columns are offset."""
        self._ragged = bool(self.offset.any())
        self._room = self.cap - int(self.offset.max())

    @property
    def ready(self) -> bool:
        """A full rollout is in: ``rollout_steps`` add() calls since the last reset()."""
        return self.t >= self.rollout_steps

    def add(self, obs, actions, rewards, next_obs, terminated, truncated, valid) -> None:
        """One vector step: obs, next_obs (n, d); actions (n,) or (n, m); the others (n,). Row offset[i] + t
        of column i."""
        if self.t >= self._room:
            raise RuntimeError("RolloutBuffer.add called again before reset() consumed the full rollout")
        idx = (self.offset + self.t, self._cols) if self._ragged else self.t
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        self.truncated[idx] = truncated
        self.valid[idx] = valid
        self.t += 1

    def batch(self) -> Rollout:
        """The filled rows, T = the longest column; shorter columns padded (see ``Rollout``)."""
        lengths = self.offset + self.t
        T = int(lengths.max())
        exists = np.arange(T)[:, None] < lengths[None, :]
        return Rollout(obs=self.obs[:T], next_obs=self.next_obs[:T], actions=self.actions[:T],
                       rewards=self.rewards[:T] * exists, terminated=self.terminated[:T] & exists,
                       truncated=self.truncated[:T] & exists, valid=self.valid[:T] & exists, lengths=lengths)

    def reset(self) -> None:
        """Start the next rollout; with ``carry_unfinished`` keep each column's unfinished episode."""
        lengths = self.offset + self.t
        self.t = 0
        if not self.carry_unfinished:
            return
        T = int(lengths.max())
        done = (self.terminated[:T] | self.truncated[:T]) & (np.arange(T)[:, None] < lengths[None, :])
        new_offset = np.zeros_like(self.offset)
        for i in range(self.num_envs):
            hits = np.flatnonzero(done[:, i])
            start = int(hits[-1]) + 1 if hits.size else 0
            if start < lengths[i] and not self.valid[start, i]:
                start += 1                   # the reset row after the episode's end: nothing to keep
            new_offset[i] = int(lengths[i]) - start
        need = int(new_offset.max()) + self.rollout_steps
        if need > self.cap:
            self._alloc(need, keep=T)
        for i in np.flatnonzero(new_offset):
            k, end = int(new_offset[i]), int(lengths[i])
            for key in FIELDS:
                arr = getattr(self, key)
                arr[:k, i] = arr[end - k:end, i].copy()
        self.offset = new_offset
        self._sync_layout()

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """The whole storage (capacity rows), the step within the rollout and the column offsets."""
        state = {key: getattr(self, key).copy() for key in FIELDS}
        state.update(t=self.t, cap=self.cap, offset=self.offset.copy())
        return state

    def load_state_dict(self, state: dict) -> None:
        cap = int(state["cap"])
        if cap != self.cap:
            self._alloc(cap)
        for key in FIELDS:
            mine = getattr(self, key)
            if np.shape(state[key]) != mine.shape:
                raise ValueError(f"rollout {key} has shape {np.shape(state[key])}, expected {mine.shape}")
            mine[...] = state[key]
        self.t = int(state["t"])
        self.offset = np.asarray(state["offset"], np.int64).copy()
        self._sync_layout()
