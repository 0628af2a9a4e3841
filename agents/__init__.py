"""Agents, their buffers, the run loop, logging and run directories; and the script API.

    import agents
    run = agents.train("dqn", env="CartPole-v1", seed=0)     # -> agents.Run (see agents.api)
    run = agents.load("runs/CartPole-v1__dqn__0__1795640000")

Where things are: ``registry`` (algorithm names), ``config`` (typed configs <-> TOML and ``--set``),
``base`` (the agent contract), ``random``/``pg``/``dqn`` (the agents), ``replay``/``rollout``/``returns``
(their buffers and return computations), ``loop`` (the only training loop), ``rundir`` (the run
directory's layout), ``logger`` (TensorBoard/CSV/console), ``network_stats`` (looking inside networks).
"""

from agents.registry import ALGOS, UnknownAlgo, get_algo  # noqa: I001  (first: the modules below use it)
from agents.api import DQN, PG, PPO, SAC, Run, load, train

__all__ = ["ALGOS", "UnknownAlgo", "get_algo", "Run", "train", "load", "DQN", "PG", "PPO", "SAC"]
