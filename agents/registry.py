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


def check_run(cfg, agent_cls: type | None = None) -> None:
    """What can be checked about a run (an ``agents.config.TrainConfig``) without training it: the algo,
    the env id, the packages it needs, its ``env_kwargs`` (one env is made and stepped once), its spaces
    and the memory it needs (one-line errors). The loop calls it before it builds anything, compare and
    sweep before they create anything. ``agent_cls``: the algorithm's agent class, if already looked up."""
    import envs
    from agents.base import EnvInfo

    if agent_cls is None:
        _, agent_cls = get_algo(cfg.algo)
    envs.check_env_id(cfg.run.env_id)
    probe = envs.make_vec_env(cfg.run.env_id, 1, seed=0, **cfg.run.env_kwargs)
    try:
        envs.check_spaces(probe.single_observation_space, probe.single_action_space,
                          discrete_actions=agent_cls.requires_discrete)
        envs.check_first_step(probe, cfg.run.env_id, cfg.run.env_kwargs)
        info = EnvInfo.from_env(probe)
        obs_bytes = info.obs_dim * probe.single_observation_space.dtype.itemsize
    finally:
        probe.close()
    check_memory(cfg, agent_cls.memory(cfg.agent, EnvInfo(info.obs_dim, info.num_actions, cfg.run.num_envs)),
                 obs_bytes)


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
