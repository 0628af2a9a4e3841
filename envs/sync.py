"""``SyncVectorEnv``: Gymnasium's ``SyncVectorEnv`` with a NEXT_STEP ``step`` that skips the generic
space helpers.

``make_vec_env`` runs envs one by one in a ``SyncVectorEnv`` for one to three envs, and for any number
of an env without a NumPy vector env (Acrobot, MountainCar, LunarLander). There the vector layer costs
more than a classic-control env's own step: Gymnasium's ``SyncVectorEnv.step`` costs two to three times
CartPole's wrapped single-env step it calls (docs/performance.md has the figures). Most of that is
generic machinery: ``iterate`` and ``concatenate`` dispatch on the space type, ``deepcopy`` of the
observation array, ``np.copy`` wrappers, ``_add_info`` on empty info dicts. For the spaces where those
helpers reduce to ``iter`` and ``np.stack`` (Box, Discrete, MultiDiscrete, MultiBinary), this ``step``
calls them directly; the per-env ``reset``/``step`` calls, the arrays they are written into and the
returned values are Gymnasium's (``tests/test_envs.py`` compares the two step for step). Any other
autoreset mode, space or action batch goes to Gymnasium's ``step``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box, Discrete, MultiBinary, MultiDiscrete
from gymnasium.vector import AutoresetMode
from gymnasium.vector import SyncVectorEnv as GymSyncVectorEnv

__all__ = ["SyncVectorEnv"]

# Batched action spaces that Gymnasium's ``iterate`` walks with ``iter``, and single observation
# spaces whose batch ``concatenate`` builds with ``np.stack(items, axis=0, out=...)``.
_ITER_ACTIONS = (Box, MultiDiscrete, MultiBinary)
_STACKED_OBS = (Box, Discrete, MultiDiscrete, MultiBinary)


class SyncVectorEnv(GymSyncVectorEnv):
    """Gymnasium's ``SyncVectorEnv`` (same constructor, reset, attributes and state), leaner ``step``."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], **kwargs: Any):
        super().__init__(env_fns, **kwargs)
        self._lean = (self.autoreset_mode == AutoresetMode.NEXT_STEP
                      and type(self.action_space) in _ITER_ACTIONS
                      and type(self.single_observation_space) in _STACKED_OBS)

    def step(self, actions):
        if not (self._lean and isinstance(actions, np.ndarray) and actions.shape[:1] == (self.num_envs,)):
            return super().step(actions)       # its own checks and errors for anything else
        env_obs, rewards, terminations, truncations = (self._env_obs, self._rewards, self._terminations,
                                                       self._truncations)
        infos: dict[str, Any] = {}
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            if self._autoreset_envs[i]:        # NEXT_STEP: the step after an episode's end resets
                env_obs[i], env_info = env.reset()
                rewards[i] = 0.0
                terminations[i] = False
                truncations[i] = False
            else:
                env_obs[i], rewards[i], terminations[i], truncations[i], env_info = env.step(action)
            if env_info:                       # _add_info leaves infos as it was for an empty dict
                infos = self._add_info(infos, env_info, i)
        np.stack(env_obs, axis=0, out=self._observations)
        self._autoreset_envs = np.logical_or(terminations, truncations)
        return (self._observations.copy() if self.copy else self._observations, rewards.copy(),
                terminations.copy(), truncations.copy(), infos)
