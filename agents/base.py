"""The agent contract: the one base class every algorithm subclasses (see ``Agent``).

Also here: ``EnvInfo`` (what an agent is told about its environment), the generator-state helpers for
``state_dict`` and the one-line config checks the agents' ``Config.validate()`` share.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np


NETWORK_DTYPES = ("float32", "float64")     # the precisions an agent's networks may use


@dataclass(frozen=True)
class EnvInfo:
    """What an agent needs to know about its environment to build itself.

    Observations are flat vectors of ``obs_dim`` numbers (``envs`` flattens other spaces). Actions are
    either one of ``num_actions`` choices (a Discrete space; ``action_dim`` 0) or a vector of
    ``action_dim`` numbers in the box ``[action_low, action_high]`` (a Box space; ``num_actions`` 0).
    """

    obs_dim: int
    num_actions: int
    num_envs: int
    action_dim: int = 0
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()

    @property
    def discrete(self) -> bool:
        return self.num_actions > 0

    @property
    def action_kind(self) -> str:
        """"discrete" or "continuous": the kinds of ``Agent.action_kinds``."""
        return "discrete" if self.discrete else "continuous"

    @classmethod
    def from_spaces(cls, observation_space: gym.Space, action_space: gym.Space, num_envs: int) -> "EnvInfo":
        if isinstance(action_space, gym.spaces.Discrete):
            return cls(obs_dim=int(np.prod(observation_space.shape)), num_actions=int(action_space.n),
                       num_envs=num_envs)
        return cls(obs_dim=int(np.prod(observation_space.shape)), num_actions=0, num_envs=num_envs,
                   action_dim=int(np.prod(action_space.shape)),
                   action_low=tuple(float(v) for v in np.ravel(action_space.low)),
                   action_high=tuple(float(v) for v in np.ravel(action_space.high)))

    @classmethod
    def from_env(cls, env: gym.vector.VectorEnv) -> "EnvInfo":
        return cls.from_spaces(env.single_observation_space, env.single_action_space, env.num_envs)

    def with_num_envs(self, num_envs: int) -> "EnvInfo":
        return dataclasses.replace(self, num_envs=num_envs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnvInfo":
        return cls(obs_dim=int(data["obs_dim"]), num_actions=int(data["num_actions"]),
                   num_envs=int(data["num_envs"]), action_dim=int(data.get("action_dim", 0)),
                   action_low=tuple(float(v) for v in data.get("action_low", ())),
                   action_high=tuple(float(v) for v in data.get("action_high", ())))


class Agent:
    """An RL algorithm as the run loop, evaluation, the network inspector and ``check-gradients`` see it.

    The loop knows no algorithm, only this contract. Shapes, with ``n = env_info.num_envs`` the number
    of vector sub-envs and ``d = env_info.obs_dim``::

        Agent(config, env_info, rng)      config: the algorithm's Config dataclass; rng: the agent's
                                          only source of randomness (one seed fixes a run)
        act(obs (n, d), step, greedy=False) -> actions: (n,) int for a discrete action space, (n, m)
                                          float within [action_low, action_high] for a continuous one
        observe(obs (n, d), actions (n,) or (n, m), rewards (n,), next_obs (n, d),
                terminated (n,) bool, truncated (n,) bool, valid (n,) bool) -> None
        learn(step) -> dict[str, float]   metrics under the documented tags; {} if it did not learn
        state_dict() -> dict              everything an exact resume needs: nested dicts of arrays
                                          and scalars (no objects; see agents.rundir)
        load_state_dict(state) -> None
        networks() -> {name: rlnn.MLP}    for inspection and the loop's finiteness check
        memory(config, env_info)          (a classmethod) the bytes it would allocate, before it does
        optimizers() -> {name: optimizer} the optimizer of networks()[name], for update ratios
        gradient_checks(batch) -> {loss name: (network or [networks], closure)}   for ``rlnn check-gradients``

    and the class attributes ``name`` (the algorithm's name), ``action_kinds`` (the action spaces it can
    take: "discrete", "continuous"; the loop refuses the others before anything starts) and ``output_kinds`` ({network name: "logits" | "means" | "q_values" | "values"},
    how the inspector draws the network's outputs).

    When each is called, per iteration of the loop::

        actions = agent.act(obs, step)                  step: the loop's env-step counter
        ... env.step(actions) ...
        agent.observe(obs, actions, rewards, next_obs, terminated, truncated, valid)
        step += valid.sum()
        metrics = agent.learn(step)

    ``step`` counts real transitions (valid rows) and is the run's one clock: schedules (epsilon,
    learning rate) are functions of it, and agents keep no step counter of their own. Evaluation calls
    ``act(obs, greedy=True)``: the greedy action, ``step`` ignored, and no draw from ``rng`` (so
    evaluating never changes the training run).

    ``valid[i]`` is False for the step right after sub-env i finished an episode: under Gymnasium's
    NEXT_STEP autoreset that step only resets the env (reward 0, action ignored), so it is not a
    transition to learn from. ``next_obs`` is the true next observation, also when the episode ended
    (it is the final one). ``terminated`` means the next state is terminal (its value is 0);
    ``truncated`` that a time limit cut the episode (the next state is not terminal).
    """

    name: ClassVar[str]                              # each algorithm sets its own
    action_kinds: ClassVar[tuple[str, ...]] = ("discrete",)
    output_kinds: ClassVar[dict[str, str]] = {}

    def __init__(self, config: Any, env_info: EnvInfo, rng: np.random.Generator):
        self.config, self.env_info, self.rng = config, env_info, rng

    def act(self, obs: np.ndarray, step: int = 0, greedy: bool = False) -> np.ndarray:
        raise NotImplementedError

    def observe(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
                terminated: np.ndarray, truncated: np.ndarray, valid: np.ndarray) -> None:
        raise NotImplementedError

    def learn(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def networks(self) -> dict[str, Any]:
        return {}

    def optimizers(self) -> dict[str, Any]:
        return {}

    @classmethod
    def memory(cls, config: Any, env_info: EnvInfo) -> list[tuple[str, str, int]]:
        """(config key, what, bytes) of the largest arrays the agent would allocate, computed before it
        allocates anything: ``agents.registry.check_run`` refuses a run no machine of this size can hold."""
        return []

    def gradient_checks(self, batch: dict[str, np.ndarray]) -> dict[str, tuple[Any, Any]]:
        """{loss name: (network, closure)}; ``closure()`` recomputes the loss from the network's
        ``flat_params`` and leaves its gradient in ``flat_grads``, through the training code path. A list
        of networks in place of one: the closure's gradient reaches each (e.g. a policy head's log-std,
        which has ``flat_params``, ``flat_grads`` and ``param_name``).

        ``batch``: one env's real transitions in time order, keys obs (B, d), actions (B,) or (B, m),
        rewards (B,), next_obs (B, d), terminated (B,), truncated (B,).
        """
        return {}


def training_rounds_due(step: int, next_train: int, train_freq: int) -> tuple[int, int]:
    """(rounds, next_train): the off-policy training rounds due by env step ``step`` (one every ``train_freq``
    env steps, the first at ``next_train``), and the env step of the next round after them."""
    rounds = 0
    while step >= next_train:
        rounds += 1
        next_train += train_freq
    return rounds, next_train


def trained_network_bytes(sizes: list[int], dtype: str) -> int:
    """Bytes of an MLP of layer widths ``sizes`` trained with Adam: its flat buffers and Adam's two moments."""
    from rlnn import MLP

    return MLP.nbytes(sizes, dtype) + 2 * MLP.param_count(sizes) * np.dtype(dtype).itemsize


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
