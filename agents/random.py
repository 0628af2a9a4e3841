"""The uniform-random baseline: what every learning curve must beat (CartPole-v1: ~22 per episode)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.base import Agent, EnvInfo, rng_state, set_rng_state


@dataclass
class RandomConfig:
    """The random agent has nothing to tune; the config exists so every algorithm looks the same."""


class RandomAgent(Agent):
    name = "random"
    action_kinds = ("discrete", "continuous")

    def __init__(self, config: RandomConfig, env_info: EnvInfo, rng: np.random.Generator):
        super().__init__(config, env_info, rng)
        # Evaluation draws from its own stream so that evaluating never changes the training run.
        self.eval_rng = np.random.default_rng(rng.integers(2**63))

    def act(self, obs: np.ndarray, step: int = 0, greedy: bool = False) -> np.ndarray:
        """Uniform over the actions: one of ``num_actions``, or a point of the action box."""
        rng = self.eval_rng if greedy else self.rng
        info = self.env_info
        if info.discrete:
            return rng.integers(0, info.num_actions, size=len(obs))
        return rng.uniform(info.action_low, info.action_high, size=(len(obs), info.action_dim))

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated, valid) -> None:
        pass

    def learn(self, step: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        set_rng_state(self.rng, state["rng"])
