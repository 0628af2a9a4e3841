"""The script API, as short as Stable-Baselines3's::

    import agents
    run = agents.train("dqn", env="CartPole-v1", seed=0)          # the tuned preset, logs to runs/
    run = agents.train("pg", seed=1, total_steps=50_000, set={"agent.lr": 1e-3}, logdir="my_runs", quiet=True)
    run.run_dir, run.step, run.evals                               # where it is, how far, greedy evals
    returns = run.evaluate(episodes=20)                            # greedy, fresh envs -> np.ndarray
    action = run.predict(obs)                                      # one observation -> int; a batch -> array
    run = agents.load("runs/CartPole-v1__dqn__0__...")             # latest checkpoint
    run = agents.train(resume="runs/CartPole-v1__dqn__0__...", total_steps=80_000)

Configs are built exactly as the ``rlnn train`` command builds them (``agents.config.build``), and
mistakes raise the same one-line ``ValueError``s the command prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import envs
from agents import config as configs
from agents.base import Agent, EnvInfo
from agents.evaluate import evaluate
from agents.loop import train as train_loop
from agents.registry import get_algo
from agents.rundir import CheckpointError, EvalRecord, RunDir
from rlnn.checkpoint import flatten


@dataclass
class Run:
    """A run on disk and its agent as of a checkpoint, ready to act greedily."""

    run_dir: str
    config: configs.TrainConfig
    agent: Agent
    step: int                                   # env steps trained so far (as of the checkpoint)
    status: str | None                          # done | target_reached | interrupted | None (never ended)
    evals: list[EvalRecord] = field(default_factory=list)
    env_state: dict[str, np.ndarray] = field(default_factory=dict, repr=False)   # for frozen normalization

    def predict(self, obs: Any) -> int | np.ndarray:
        """The greedy action for one observation (an int, or a vector for a Box action space), or for a
        batch (rows) of them (an array)."""
        x = np.asarray(obs, dtype=np.float64)
        actions = self.agent.act(np.atleast_2d(x), self.step, greedy=True)
        if x.ndim == 1:
            return int(actions[0]) if self.agent.env_info.discrete else actions[0]
        return actions

    def evaluate(self, episodes: int = 20, seed: int = 12345) -> np.ndarray:
        """Greedy returns of ``episodes`` episodes on fresh envs (observation normalization frozen)."""
        if episodes < 1:
            raise envs.EnvError(f"episodes={episodes}: must be at least 1")
        env = self.make_env(episodes)
        try:
            return evaluate(self.agent, env, seed=seed)
        finally:
            env.close()

    def make_env(self, num_envs: int, **kwargs: Any):
        """A vector env like the run's, with its observation normalization frozen at the checkpoint's."""
        run = self.config.run
        return envs.make_eval_env_from_state(run.env_id, num_envs, run.normalize_obs, self.env_state,
                                             **{**run.env_kwargs, **kwargs})


def train(algo: str | None = None, *, env: str | None = None, seed: int | None = None,
          total_steps: int | None = None, config: str | None = None, set: dict[str, Any] | None = None,
          logdir: str | None = None, quiet: bool = False, resume: str | None = None) -> Run:
    """Train a new run (preset < ``config`` TOML file < ``env``/``seed``/``total_steps``/``logdir`` < ``set``)
    or, with ``resume=RUN_DIR``, continue one up to ``total_steps``; returns the trained Run."""
    if resume is not None:
        return _resume(resume, algo, total_steps, set or {}, quiet, env=env, seed=seed, config=config, logdir=logdir)
    cfg = configs.build(algo, env, config, set or {}, {"seed": seed, "total_steps": total_steps, "logdir": logdir})
    return load(train_loop(cfg.algo, cfg.run, cfg.agent, console=not quiet).run_dir)


def _resume(run_dir: str, algo: str | None, total_steps: int | None, sets: dict[str, Any], quiet: bool,
            **fixed: Any) -> Run:
    """Continue ``run_dir``; ``sets`` may change what a resumed run can change (the loop checks and records)."""
    given = [name for name, value in fixed.items() if value is not None]
    if given:
        raise configs.ConfigError(f"resume continues {run_dir} as it was configured: {', '.join(given)} "
                                  "cannot change (total_steps and set= can)")
    rd = RunDir(run_dir)
    cfg = configs.TrainConfig.from_dict(rd.read_config(), rd.file(RunDir.CONFIG))
    if algo is not None and algo != cfg.algo:
        raise configs.ConfigError(f"algo {algo!r} does not match the run's algorithm {cfg.algo!r}")
    run_cfg, agent_cfg = configs.apply_sets(sets, cfg.algo, cfg.run, cfg.agent)
    if total_steps is not None:
        run_cfg = configs.update(run_cfg, {"total_steps": total_steps}, "run")
    train_loop(cfg.algo, run_cfg, agent_cfg, run_dir=run_dir, resume=True, console=not quiet)
    return load(run_dir)


def load(run_dir: str, checkpoint: str | None = None) -> Run:
    """A run's agent from its latest checkpoint (or ``checkpoint``, a path), built as it was trained."""
    rd = RunDir(run_dir)
    cfg = configs.TrainConfig.from_dict(rd.read_config(), rd.file(RunDir.CONFIG))
    _, agent_cls = get_algo(cfg.algo)
    probe = envs.make_vec_env(cfg.run.env_id, 1, seed=0, **cfg.run.env_kwargs)
    info = EnvInfo.from_env(probe)
    probe.close()
    # Built as it was trained (buffers are sized by the run's num_envs); acting takes any batch size.
    agent = agent_cls(cfg.agent, info.with_num_envs(cfg.run.num_envs), np.random.default_rng(0))
    path = checkpoint or rd.latest_checkpoint()
    meta, arrays = rd.load_checkpoint(path)
    try:
        agent.load_state_dict(arrays["agent"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: does not match the run's agent ({e})") from None
    step = int(meta.get("loop", {}).get("step", 0))
    evals = [e for e in rd.evals() if e.step <= step]
    return Run(run_dir=rd.path, config=cfg, agent=agent, step=step, status=rd.status, evals=evals,
               env_state=flatten(arrays.get("env", {})))

