"""Small user-style envs for the tests of "your own env": importable by module name, so runs made on them
can be rebuilt in a fresh process."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class LineWalk(gym.Env):
    """Walk from cell 0 to the last cell of a line, -1 a step: the best return is -(size - 1)."""

    def __init__(self, size: int = 6):
        self.size = size
        self.observation_space = gym.spaces.Discrete(size)
        self.action_space = gym.spaces.Discrete(2)          # 0: left, 1: right

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return self.pos, {}

    def step(self, action):
        self.pos = min(max(self.pos + (1 if action == 1 else -1), 0), self.size - 1)
        return self.pos, -1.0, self.pos == self.size - 1, False, {}


class GridDict(gym.Env):
    """A Dict observation (a Box image and a Discrete flag): reach the flag's corner of a 3x3 grid."""

    def __init__(self):
        self.observation_space = gym.spaces.Dict({"grid": gym.spaces.Box(0.0, 1.0, (3, 3), np.float32),
                                                  "corner": gym.spaces.Discrete(2)})
        self.action_space = gym.spaces.Discrete(4)

    def _obs(self):
        grid = np.zeros((3, 3), np.float32)
        grid[self.pos] = 1.0
        return {"grid": grid, "corner": self.corner}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.corner, self.t = (1, 1), int(self.np_random.integers(2)), 0
        return self._obs(), {}

    def step(self, action):
        dr, dc = [(-1, 0), (1, 0), (0, -1), (0, 1)][int(action)]
        self.pos = (min(max(self.pos[0] + dr, 0), 2), min(max(self.pos[1] + dc, 0), 2))
        self.t += 1
        goal = (0, 0) if self.corner == 0 else (2, 2)
        return self._obs(), (1.0 if self.pos == goal else -0.1), self.pos == goal, self.t >= 20, {}


class BrokenReset(gym.Env):
    """Fails Gymnasium's env checker: reset returns an observation outside its space."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.full(2, 5.0, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {}


def make_line_walk() -> gym.Env:
    return gym.wrappers.TimeLimit(LineWalk(), 50)


gym.register("LineWalk-v0", entry_point=LineWalk, max_episode_steps=50)
