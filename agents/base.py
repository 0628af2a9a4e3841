"""The agent interface: the run loop knows no algorithm, only these five methods.

Shapes, with ``n`` the number of vector sub-envs and ``d`` the observation size:

    act(obs (n, d), greedy=False) -> actions (n,) int64
    observe(obs (n, d), actions (n,), rewards (n,), next_obs (n, d),
            terminated (n,) bool, truncated (n,) bool, valid (n,) bool) -> None
    learn(step) -> dict[str, float]          # metrics under the documented tags; {} if it did not learn
    state_dict() -> dict[str, np.ndarray]     # everything an exact resume needs (arrays and scalars)
    load_state_dict(state) -> None
    networks() -> dict[str, rlnn.MLP]         # named networks, for inspection and gradient checks

``valid[i]`` is False for the step right after sub-env i finished an episode: under Gymnasium's NEXT_STEP
autoreset that step only resets the env (reward 0, action ignored), so it is not a transition to learn
from. ``next_obs`` is the true next observation, also when the episode ended (it is the final one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np


@runtime_checkable
class Agent(Protocol):
    name: str

    def act(self, obs: np.ndarray, greedy: bool = False) -> np.ndarray: ...

    def observe(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
                terminated: np.ndarray, truncated: np.ndarray, valid: np.ndarray) -> None: ...

    def learn(self, step: int) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def networks(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class EnvInfo:
    """What an agent needs to know about its environment to build itself."""

    obs_dim: int
    num_actions: int
    num_envs: int

    @classmethod
    def from_env(cls, env: gym.vector.VectorEnv) -> "EnvInfo":
        obs_space, act_space = env.single_observation_space, env.single_action_space
        num_actions = int(act_space.n) if isinstance(act_space, gym.spaces.Discrete) else 0
        return cls(obs_dim=int(np.prod(obs_space.shape)), num_actions=num_actions, num_envs=env.num_envs)


def rng_state(rng: np.random.Generator) -> np.ndarray:
    """A generator's state as a JSON string in a 0-d array (data, not pickle)."""
    import json

    return np.asarray(json.dumps(rng.bit_generator.state))


def set_rng_state(rng: np.random.Generator, state: Any) -> None:
    import json

    rng.bit_generator.state = json.loads(str(state))


# ---------------------------------------------------------------- config checks
# One-line ValueErrors naming the key and what is allowed; the agents' Config.validate() use these.

def check_choice(cfg: Any, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in allowed:
        raise ValueError(f"agent.{name} = {value!r}: choose one of {', '.join(allowed)}")


def check_range(cfg: Any, names: tuple[str, ...], low: float, high: float, open_low: bool = False) -> None:
    """Each value in [low, high] (in (low, high] with open_low)."""
    for name in names:
        value = getattr(cfg, name)
        if not ((low < value) if open_low else (low <= value)) or not value <= high:
            raise ValueError(f"agent.{name} = {value}: must be in {'(' if open_low else '['}{low:g}, {high:g}]")


def check_at_least(cfg: Any, names: tuple[str, ...], low: int) -> None:
    for name in names:
        if getattr(cfg, name) < low:
            raise ValueError(f"agent.{name} = {getattr(cfg, name)}: "
                             f"{'must be 0 or more' if low == 0 else f'must be at least {low}'}")


def check_positive(cfg: Any, names: tuple[str, ...]) -> None:
    for name in names:
        if not getattr(cfg, name) > 0:
            raise ValueError(f"agent.{name} = {getattr(cfg, name)}: must be > 0")


def check_network(cfg: Any, sizes_name: str = "hidden_sizes") -> None:
    """Hidden widths are positive; the activation is one rlnn knows."""
    from rlnn import activations

    sizes = getattr(cfg, sizes_name)
    if not sizes or any(int(h) < 1 for h in sizes):
        raise ValueError(f"agent.{sizes_name} = {sizes}: need one or more positive widths")
    check_choice(cfg, "activation", activations.NAMES)
