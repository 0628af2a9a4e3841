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
    "sac": "agents.sac:SACConfig:SACAgent",
}


class UnknownAlgo(ValueError):
    pass


def canonical(name: str) -> str:
    """The registered spelling of an algorithm name (names are case-insensitive: "DQN" is dqn)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in ALGOS:
        raise UnknownAlgo(f"unknown algorithm {name!r}: choose one of {', '.join(ALGOS)}")
    return key


def get_algo(name: str) -> tuple[type, type]:
    """(ConfigClass, AgentClass) for an algorithm name."""
    module, config_cls, agent_cls = ALGOS[canonical(name)].split(":")
    mod = importlib.import_module(module)
    return getattr(mod, config_cls), getattr(mod, agent_cls)


def check_spaces(algo: str, env_id: str, observation_space, action_space,
                 action_kinds: tuple[str, ...] | None = None) -> None:
    """EnvError (one line) unless ``algo`` (whose agent takes ``action_kinds``, by default its class's) can
    take the env's spaces; it names the algorithms that can."""
    import envs

    kind = envs.check_spaces(observation_space, action_space)
    kinds = get_algo(algo)[1].action_kinds if action_kinds is None else action_kinds
    if kind not in kinds:
        able = [name for name in ALGOS if name != "random" and kind in get_algo(name)[1].action_kinds]
        needs = " or ".join({"discrete": "a Discrete", "continuous": "a Box"}[k] for k in kinds)
        raise envs.EnvError(f"{env_id}: {algo} needs {needs} action space, and this env's is "
                            f"{action_space}" + (f"; algorithms for it: {', '.join(able)}" if able else ""))


def check_run(cfg, maker=None) -> None:
    """What can be checked about a run (an ``agents.config.TrainConfig``) without training it: the algo,
    the env, the packages it needs, its ``env_kwargs`` and its spaces (one-line errors). compare and
    sweep call it before creating anything."""
    import envs

    probe = envs.make_vec_env(cfg.run.env_id, 1, seed=0, maker=maker, evaluation=maker is not None,
                              **cfg.run.env_kwargs)
    try:
        check_spaces(cfg.algo, cfg.run.env_id, probe.single_observation_space, probe.single_action_space)
    finally:
        probe.close()
