"""``PendulumVectorEnv``: Pendulum-v1 as one NumPy vector env (Gymnasium has none), the same dynamics bit for bit.

Gymnasium's Pendulum is a Python env, so n of them step through ``SyncVectorEnv``: per sub-env a clip, a
state array, an observation array and four wrappers (time limit, order enforcing, checker), about 30 us
a step. Here every sub-env's (theta, theta_dot) is a column of one (2, n) state and a step is a handful of
ufuncs on n-element rows (the cost, per sub-env: see ``step``). The arithmetic is Gymnasium's
``PendulumEnv.step``, operation for operation and in its dtypes (the torque is clipped in the action's
dtype and enters the cost and the acceleration in it, as it does there), so from the same state and
action it returns the same bits (``tests/test_envs.py`` checks it against ``PendulumEnv`` step for step).

Like Gymnasium's ``CartPoleVectorEnv``: one generator draws every sub-env's initial state (so a run differs
from one on ``SyncVectorEnv``, whose sub-envs each have their own), episodes are truncated after
``max_episode_steps``, and a sub-env whose episode ended resets on its next step (NEXT_STEP autoreset:
that step returns the new first observation, reward 0, not terminated, not truncated). ``state``,
``steps`` and ``prev_done`` are its whole state (``envs.state`` saves and restores them with the RNG).
No rendering: ``rlnn eval --render/--gif`` makes a single Gymnasium env.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.pendulum import DEFAULT_X, DEFAULT_Y, angle_normalize
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

__all__ = ["PendulumVectorEnv", "ENTRY_POINT"]

ENTRY_POINT = "envs.pendulum:PendulumVectorEnv"


class PendulumVectorEnv(VectorEnv):
    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int = 200, render_mode: str | None = None,
                 g: float = 10.0):
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r}: the NumPy Pendulum vector env does not render")
        self.num_envs, self.max_episode_steps, self.render_mode = num_envs, max_episode_steps, None
        self.max_speed, self.max_torque, self.dt, self.g, self.m, self.l = 8, 2.0, 0.05, g, 1.0, 1.0
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        self.single_action_space = spaces.Box(-self.max_torque, self.max_torque, shape=(1,), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.high = np.array([[DEFAULT_X], [DEFAULT_Y]])
        self.state = None
        self.steps = np.zeros(num_envs, dtype=np.int32)
        self.prev_done = np.zeros(num_envs, dtype=np.bool_)
        # Gymnasium's constants, grouped as its step groups them: 3 g / (2 l) and 3 / (m l^2).
        self._gravity_term, self._torque_term = 3 * g / (2 * self.l), 3.0 / (self.m * self.l ** 2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options:
            self.high = np.array([[options.get("x_init", DEFAULT_X)], [options.get("y_init", DEFAULT_Y)]], float)
        self.state = self.np_random.uniform(low=-self.high, high=self.high, size=(2, self.num_envs))
        self.steps = np.zeros(self.num_envs, dtype=np.int32)
        self.prev_done = np.zeros(self.num_envs, dtype=np.bool_)
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action)
        if action.shape != (self.num_envs, 1):
            raise ValueError(f"{action!r} invalid: ({self.num_envs}, 1) torques expected")
        if self.state is None:
            raise RuntimeError("Call reset before using step method.")
        th, thdot = self.state
        u = np.clip(action[:, 0], -self.max_torque, self.max_torque)        # in the action's dtype, as Gymnasium
        # Gymnasium squares NumPy scalars, which calls libm's pow (powf for float32): it differs from the
        # correctly rounded x * x of an array's ** 2 in about 0.1% of values, so the cost goes per sub-env.
        costs = np.array([angle_normalize(t) ** 2 + 0.1 * td ** 2 + 0.001 * (v ** 2) for t, td, v in zip(th, thdot, u)])
        newthdot = thdot + (self._gravity_term * np.sin(th) + self._torque_term * u) * self.dt
        newthdot = np.clip(newthdot, -self.max_speed, self.max_speed)
        self.state = np.stack([th + newthdot * self.dt, newthdot])
        reward = -costs
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        prev = self.prev_done
        if prev.any():          # the sub-envs that ended last step reset now (NEXT_STEP autoreset)
            self.state[:, prev] = self.np_random.uniform(low=-self.high, high=self.high, size=(2, int(prev.sum())))
            self.steps[prev] = 0
            reward[prev] = 0.0
            truncated[prev] = False
        self.prev_done = truncated.copy()
        return self._obs(), reward, terminated, truncated, {}

    def _obs(self) -> np.ndarray:
        th, thdot = self.state
        return np.stack([np.cos(th), np.sin(th), thdot], axis=1).astype(np.float32)
