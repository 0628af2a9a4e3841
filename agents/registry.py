"""The algorithms rlnn knows: a name -> ``"module:ConfigClass:AgentClass"``, imported on demand.

Each agent module holds one typed config dataclass (its hyperparameters, the TOML ``[agent]`` table and
the ``--set agent.key=value`` keys) and one ``agents.base.Agent`` subclass.
"""

from __future__ import annotations

import importlib

ALGOS = {
    "random": "agents.random:RandomConfig:RandomAgent",
    "pg": "agents.pg:PGConfig:PGAgent",
    "ppo": "agents.ppo:PPOConfig:PPOAgent",
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


def check_run(cfg, agent_cls: type | None = None, maker=None) -> None:
    """What can be checked about a run (an ``agents.config.TrainConfig``) without training it: the algo,
    the env, the packages it needs, its ``env_kwargs`` (one env is made and stepped once), its spaces
    and the memory it needs (one-line errors). The loop calls it before it builds anything, compare and
    sweep before they create anything. ``agent_cls``: the algorithm's agent class, if already looked up;
    ``maker``: what makes the env when it was given as an object (``envs.maker_for``)."""
    import envs
    from agents.base import EnvInfo

    if agent_cls is None:
        _, agent_cls = get_algo(cfg.algo)
    # an object's evaluation maker makes copies: probing must not touch an instance the run will train on
    probe = envs.make_vec_env(cfg.run.env_id, 1, seed=0, maker=maker, evaluation=maker is not None,
                              **cfg.run.env_kwargs)
    try:
        check_spaces(cfg.algo, cfg.run.env_id, probe.single_observation_space, probe.single_action_space,
                     agent_cls.action_kinds)
        envs.check_first_step(probe, cfg.run.env_id, cfg.run.env_kwargs)
        info = EnvInfo.from_env(probe)
        obs_bytes = info.obs_dim * probe.single_observation_space.dtype.itemsize
    finally:
        probe.close()
    check_memory(cfg, agent_cls.memory(cfg.agent, info.with_num_envs(cfg.run.num_envs)), obs_bytes)


def physical_memory() -> int:
    """Bytes of physical memory of this machine."""
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(cfg, agent_needs: list[tuple[str, str, int]], obs_bytes: int) -> None:
    """ConfigError when the arrays the run would allocate (the agent's ``memory``, the training and
    evaluation envs) need more than this machine's physical memory: a lower bound, so a run that is
    refused could never fit, named by the config key of its largest part."""
    from agents.config import ConfigError

    # per env, at the least: the loop's observation and the next one, an 8-byte reward and action, and the
    # episode statistics' return, length and start time (8 bytes each)
    per_env = 2 * obs_bytes + 40
    needs = [*agent_needs, ("run.num_envs", "the training envs", cfg.run.num_envs * per_env),
             ("run.eval_episodes", "the evaluation envs", cfg.run.eval_episodes * per_env)]
    total, have = sum(n for _, _, n in needs), physical_memory()
    if total <= have:
        return
    key, what, most = max(needs, key=lambda need: need[2])
    section, name = key.split(".")
    value = getattr(cfg.run if section == "run" else cfg.agent, name)
    raise ConfigError(f"{key} = {value}: this run would need at least {_size(total)} of memory ({what} "
                      f"{_size(most)}), more than this machine's {_size(have)} of physical memory")


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
