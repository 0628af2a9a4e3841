"""The algorithms rlnn knows: a name -> ``"module:ConfigClass:AgentClass"``, imported on demand.

Each agent module holds one typed config dataclass (its hyperparameters, the TOML ``[agent]`` table and
the ``--set agent.key=value`` keys) and one ``agents.base.Agent`` subclass.
"""

from __future__ import annotations

import importlib

ALGOS = {
    "random": "agents.random:RandomConfig:RandomAgent",
    "pg": "agents.pg:PGConfig:PGAgent",
    "dqn": "agents.dqn:DQNConfig:DQNAgent",
}


class UnknownAlgo(ValueError):
    pass


def get_algo(name: str) -> tuple[type, type]:
    """(ConfigClass, AgentClass) for an algorithm name."""
    if name not in ALGOS:
        raise UnknownAlgo(f"unknown algorithm {name!r}: choose one of {', '.join(ALGOS)}")
    module, config_cls, agent_cls = ALGOS[name].split(":")
    mod = importlib.import_module(module)
    return getattr(mod, config_cls), getattr(mod, agent_cls)


def check_run(cfg) -> None:
    """What can be checked about a run (an ``agents.config.TrainConfig``) without training it: the algo,
    the env id, the packages it needs, its ``env_kwargs`` and its spaces (one-line errors). compare and
    sweep call it before creating anything."""
    import envs

    _, agent_cls = get_algo(cfg.algo)
    envs.check_env_id(cfg.run.env_id)
    probe = envs.make_vec_env(cfg.run.env_id, 1, seed=0, **cfg.run.env_kwargs)
    try:
        envs.check_spaces(probe.single_observation_space, probe.single_action_space,
                          discrete_actions=agent_cls.requires_discrete)
    finally:
        probe.close()
