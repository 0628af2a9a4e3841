"""The script API, in Stable-Baselines3's shape::

    import agents
    run = agents.train("dqn", env="CartPole-v1", seed=0)          # the tuned preset, logs to runs/
    action, _ = run.predict(obs, deterministic=True)               # as SB3: (action, state); batches too
    run.learn(10_000)                                              # 10k more steps, in this process
    run.save("cartpole_dqn.npz")                                   # one self-contained file
    run = agents.load("cartpole_dqn.npz")                          # or a run directory
    returns = run.evaluate(episodes=20)                            # greedy, fresh envs -> np.ndarray

    model = agents.DQN("MlpPolicy", "CartPole-v1", seed=0)         # SB3's constructor, untrained
    model.learn(total_timesteps=20_000)

``env=`` takes an env id (``"CartPole-v1"``, ``"my_pkg.envs:LineWalk-v0"``), a ``gym.Env`` subclass, a
zero-argument function returning an env (called once per vector env, and again for evaluation envs),
or one ``gym.Env`` instance (the run's only training env; evaluation runs on deep copies of it taken
when training starts). ``envs.source`` says how each is recorded in the run's config.

Configs are built exactly as the ``rlnn train`` command builds them (``agents.config.build`` and
``resumed``), and mistakes raise the same one-line ``ValueError``s the command prints; an argument of
the wrong type (a dict for an observation, a float for a count, None for a path) raises a one-line
``TypeError``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any, Callable

import gymnasium as gym
import numpy as np

import envs
from agents import config as configs
from agents.base import Agent, EnvInfo
from agents.evaluate import evaluate
from agents.loop import train as train_loop
from agents.loop_state import Checkpoint
from agents.registry import get_algo
from agents.rundir import EvalRecord, RunDir, RunDirError, read_checkpoint
from rlnn.checkpoint import TMP_SUFFIX


class Run:
    """A run's agent as of one checkpoint, ready to act, evaluate, learn more and be saved.

    Attributes: ``run_dir`` (None for a model loaded from a file or not trained yet), ``config``
    (``agents.config.TrainConfig``), ``agent``, ``step`` (env steps trained), ``status`` (done |
    target_reached | stopped | interrupted, None if no session ended), ``stop_reason``, ``evals`` (the
    greedy evaluations so far, ``EvalRecord``s), ``checkpoint`` (the file it was loaded from).
    """

    def __init__(self, config: configs.TrainConfig, agent: Agent, env_info: EnvInfo, step: int = 0,
                 run_dir: str | None = None, checkpoint: str | None = None, status: str | None = None,
                 stop_reason: str = "", evals: list[EvalRecord] | None = None,
                 env_state: dict[str, np.ndarray] | None = None, observation_space=None,
                 maker: envs.EnvMaker | None = None):
        self.config, self.agent, self.env_info, self.step = config, agent, env_info, step
        self.run_dir, self.checkpoint, self.status, self.stop_reason = run_dir, checkpoint, status, stop_reason
        self.evals = evals or []
        self.env_state = env_state or {}
        self.observation_space = observation_space
        self.maker = maker
        self.quiet = False                  # learn()'s default: progress on the console
        # predict(deterministic=False) samples with a generator of its own: the agent's is part of the
        # training state, and drawing from it would make a later learn() differ from an uninterrupted run.
        self._predict_rng = np.random.default_rng(0)

    def __repr__(self) -> str:
        where = self.run_dir or self.checkpoint or "not trained yet"
        return f"Run({self.config.algo} on {self.config.run.env_id}, step {self.step:,}, {where})"

    # ------------------------------------------------------------------ acting
    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[Any, None]:
        """(action, state) as SB3's ``predict``: the action for one observation as the env returns it
        (an int for a Discrete action space, an (m,) array for a Box), or an array of actions for a batch;
        state is None (an MLP keeps none). ``deterministic``: the greedy action; otherwise a draw from the
        policy (DQN: epsilon-greedy at the run's epsilon)."""
        x, batched = self._prepare(observation)
        if deterministic:
            actions = self.agent.act(x, self.step, greedy=True)
        else:
            training_rng, self.agent.rng = self.agent.rng, self._predict_rng
            try:
                actions = self.agent.act(x, self.step)
            finally:
                self.agent.rng = training_rng
        if batched:
            return actions, None
        return (int(actions[0]) if self.env_info.discrete else actions[0]), None

    def _prepare(self, observation: Any) -> tuple[np.ndarray, bool]:
        """(flat observations (B, d) as the agent saw them in training, whether a batch was given)."""
        space = self.observation_space or gym.spaces.Box(-np.inf, np.inf, (self.env_info.obs_dim,))
        x, batched = envs.flatten_batch(space, observation)
        if self.config.run.normalize_obs and "norm/mean" in self.env_state:
            x = envs.normalize_frozen(x, self.env_state["norm/mean"], self.env_state["norm/var"])
        return x, batched

    def evaluate(self, episodes: int = 20, seed: int = 12345) -> np.ndarray:
        """Greedy returns of ``episodes`` episodes on fresh envs (observation normalization frozen)."""
        _check_int("episodes", episodes, 1)
        _check_int("seed", seed, 0)
        env = self.make_env(episodes)
        try:
            return evaluate(self.agent, env, seed=seed)
        finally:
            env.close()

    def make_env(self, num_envs: int, **kwargs: Any):
        """A vector env like the run's evaluation envs, observation normalization frozen at the checkpoint's."""
        run = self.config.run
        return envs.make_eval_env_from_state(run.env_id, num_envs, run.normalize_obs, self.env_state,
                                             maker=self.maker, **{**run.env_kwargs, **kwargs})

    # ---------------------------------------------------------------- learning
    def learn(self, total_timesteps: int | None = None, callback: Callable | None = None, *,
              total_steps: int | None = None, quiet: bool | None = None, logdir: str | None = None,
              **_sb3_only: Any) -> "Run":
        """Train ``total_timesteps`` more env steps (as SB3's ``learn``; ``total_steps`` is the same),
        continuing this run's step counter in this process; returns this Run, updated.

        From a run directory it continues that run (from this Run's checkpoint: an older one branches the
        run there). A model loaded from a file, or one never trained, starts a new run directory under
        ``logdir`` (default: the config's ``run.logdir``). SB3's other arguments (``progress_bar``,
        ``log_interval``, ``tb_log_name``, ``reset_num_timesteps``) are accepted and ignored: rlnn always
        logs to TensorBoard and shows its progress unless ``quiet`` (default: the Run's ``quiet``).
        """
        quiet = self.quiet if quiet is None else quiet
        more = total_steps if total_steps is not None else total_timesteps
        if isinstance(more, bool) or not isinstance(more, (int, np.integer)) or more < 1:
            raise TypeError(f"total_timesteps={more!r}: expected a positive number of env steps")
        total = self.step + int(more)
        if self.run_dir is None:
            cfg = dataclasses.replace(self.config, run=configs.update(
                self.config.run, {"total_steps": total, **({"logdir": logdir} if logdir else {})}, "run"))
            if self.checkpoint is None:         # never trained: a new run
                result = train_loop(cfg.algo, cfg.run, cfg.agent, console=not quiet, callback=callback,
                                    maker=self.maker)
                self._become(load(result.run_dir, env=self.maker))
                return self
            run_dir = _adopt(self.checkpoint, cfg)
            checkpoint = None
        else:
            run_dir, checkpoint = self.run_dir, self.checkpoint
            cfg = configs.resumed(run_dir, total_steps=total)
            if checkpoint == RunDir(run_dir).latest_checkpoint():
                checkpoint = None
        train_loop(cfg.algo, cfg.run, cfg.agent, run_dir=run_dir, resume=True, console=not quiet,
                   callback=callback, checkpoint=checkpoint, maker=self.maker)
        self._become(load(run_dir, env=self.maker))
        return self

    def _become(self, other: "Run") -> None:
        rng, quiet = self._predict_rng, self.quiet
        self.__dict__.update(other.__dict__)
        self._predict_rng, self.quiet = rng, quiet

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike, checkpoint: str | None = None) -> str:
        """Write this Run's checkpoint (or the run's ``checkpoint``: "latest", "best", "step_N") to one
        self-contained file (config, env description, observation statistics, agent), which
        ``agents.load(path)`` reads in any process; returns the path written. As SB3 adds ".zip", a
        name without an extension gets ".npz"."""
        source = self.checkpoint
        if checkpoint is not None:
            if self.run_dir is None:
                raise ValueError(f"checkpoint={checkpoint!r}: this Run was not loaded from a run directory")
            source = _checkpoint_path(RunDir(self.run_dir), checkpoint)
        if source is None:
            raise ValueError("this model has not been trained yet: call learn() first")
        path = os.fspath(path)
        if not os.path.splitext(path)[1]:
            path += ".npz"
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}{TMP_SUFFIX}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)
        return path


def train(algo: str | None = None, *, env: Any = None, seed: int | None = None, total_steps: int | None = None,
          config: str | None = None, set: dict[str, Any] | list[str] | None = None, logdir: str | None = None,
          quiet: bool = False, resume: str | None = None, callback: Callable | None = None) -> Run:
    """Train a new run (preset < ``config`` TOML file < ``env``/``seed``/``total_steps``/``logdir`` < ``set``)
    or, with ``resume=RUN_DIR``, continue one up to ``total_steps``; returns the trained Run.

    ``callback(info)``: called after every vector step with ``info["step"]``, ``info["metrics"]``,
    ``info["eval"]`` (see ``agents.loop.train``); returning False stops the run.
    """
    for what, value in (("config", config), ("resume", resume)):
        if value is not None:
            _check_path(what, value)
    name, maker = (None, None) if env is None else envs.maker_for(env)
    if resume is not None:
        cfg = configs.resumed(os.fspath(resume), algo, total_steps, set, seed=seed, config=config, logdir=logdir,
                              env=None if maker is not None else name)
        _check_maker_matches(maker, name, cfg)
        train_loop(cfg.algo, cfg.run, cfg.agent, run_dir=os.fspath(resume), resume=True, console=not quiet,
                   callback=callback, maker=maker)
        return load(resume, env=env)
    cfg = configs.build(algo, name, config, set, {"seed": seed, "total_steps": total_steps, "logdir": logdir})
    result = train_loop(cfg.algo, cfg.run, cfg.agent, console=not quiet, callback=callback, maker=maker)
    return load(result.run_dir, env=env)


def _check_maker_matches(maker, name: str | None, cfg: configs.TrainConfig) -> None:
    if maker is not None and name != cfg.run.env_id:
        raise configs.ConfigError(f"env={name}: the run was trained on {cfg.run.env_id}; pass that env")


def load(path: str | os.PathLike, checkpoint: str | None = None, env: Any = None) -> Run:
    """A Run from a run directory (its latest checkpoint, or ``checkpoint``: "best", "latest", "step_N" or a
    file) or from a checkpoint file (``Run.save``'s, or a run's ``checkpoints/*.npz``), built as it was
    trained. ``env``: the env again, when the run's env was an object given in a script (an id string
    needs nothing: the config names it); acting needs no env at all."""
    _check_path("path", path)
    if checkpoint is not None and not isinstance(checkpoint, str):
        _check_path("checkpoint", checkpoint)
        checkpoint = os.fspath(checkpoint)
    path = os.fspath(path)
    maker = _maker(env)
    if os.path.isdir(path):
        rd = RunDir(path)
        cfg = configs.TrainConfig.from_dict(rd.read_config(), rd.file(RunDir.CONFIG))
        file = _checkpoint_path(rd, checkpoint)
        ckpt = Checkpoint(file, *rd.load_checkpoint(file))
        evals = [e for e in rd.evals() if e.step <= ckpt.step]
        result = rd.read_result() or {}
        return _run_from(ckpt, cfg, maker, run_dir=rd.path, status=rd.status, evals=evals,
                         stop_reason=result.get("stop_reason", ""))
    if not os.path.exists(path) and os.path.isfile(path + ".npz"):
        path += ".npz"                          # Run.save("name") wrote name.npz
    if not os.path.exists(path):
        raise RunDirError(f"{path}: no such run directory or saved model")
    if checkpoint is not None:
        raise ValueError(f"checkpoint={checkpoint!r}: {path} is a file, which holds one checkpoint")
    ckpt = Checkpoint(path, *read_checkpoint(path))
    return _run_from(ckpt, ckpt.config, maker)


def _check_path(name: str, value: Any) -> None:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name}={value!r}: expected a path (str or os.PathLike), not {type(value).__name__}")


def _check_int(name: str, value: Any, low: int) -> None:
    """TypeError unless ``value`` is an int; ValueError below ``low``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name}={value!r}: expected an int, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}={value}: must be {'0 or more' if low == 0 else f'at least {low}'}")


def _maker(env: Any) -> envs.EnvMaker | None:
    """What makes a run's envs when ``env`` is an object (an id string needs nothing: the config names it)."""
    if env is None or isinstance(env, str) or isinstance(env, envs.EnvMaker):
        return None if isinstance(env, str) else env
    return envs.maker_for(env)[1]


def _checkpoint_path(rd: RunDir, checkpoint: str | None) -> str:
    if checkpoint is None or checkpoint == "latest":
        return rd.latest_checkpoint()
    if checkpoint == "best":
        if not os.path.isfile(rd.best_checkpoint_path):
            raise RunDirError(f"{rd.path}: no best checkpoint (the run has not evaluated yet)")
        return rd.best_checkpoint_path
    return rd.checkpoint_named(checkpoint)


def _run_from(ckpt: Checkpoint, cfg: configs.TrainConfig, maker, **where: Any) -> Run:
    info = ckpt.env_info or _probe_env_info(cfg, maker)
    _, agent_cls = get_algo(cfg.algo)
    # Built as it was trained (buffers are sized by the run's num_envs); acting takes any batch size.
    agent = agent_cls(cfg.agent, info.with_num_envs(cfg.run.num_envs), np.random.default_rng(0))
    ckpt.restore_agent(agent, cfg.algo)
    return Run(cfg, agent, info, step=ckpt.step, checkpoint=ckpt.path, env_state=ckpt.env_state,
               observation_space=ckpt.observation_space, maker=maker, **where)


def _probe_env_info(cfg: configs.TrainConfig, maker) -> EnvInfo:
    """The env's EnvInfo by making one (checkpoints written before they recorded it)."""
    probe = envs.make_vec_env(cfg.run.env_id, 1, seed=0, maker=maker, evaluation=True, **cfg.run.env_kwargs)
    try:
        return EnvInfo.from_env(probe)
    finally:
        probe.close()


def _adopt(checkpoint_file: str, cfg: configs.TrainConfig) -> str:
    """A new run directory that starts from a saved model's checkpoint (``Run.learn`` on a loaded file)."""
    meta, _ = read_checkpoint(checkpoint_file)
    step = int(meta.get("loop", {}).get("step", 0))
    rd = RunDir.create_new(cfg.run.logdir, cfg.run.env_id, cfg.algo, cfg.run.seed)
    rd.write_config(cfg.to_dict())
    target = rd.checkpoint_path(step)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(checkpoint_file, target)
    return rd.path


# --------------------------------------------------------------- SB3's constructors
def untrained(algo: str, env: Any = "CartPole-v1", seed: int | None = None, hyperparams: dict | None = None,
              quiet: bool = False) -> Run:
    """A Run that has not trained yet: ``learn`` starts its run; ``predict`` acts with fresh weights."""
    name, maker = envs.maker_for(env)
    cfg = configs.build(algo, name, None, hyperparams or {}, {"seed": seed})
    probe = envs.make_vec_env(cfg.run.env_id, 1, seed=0, maker=maker, evaluation=True, **cfg.run.env_kwargs)
    try:
        info, space = EnvInfo.from_env(probe), envs.raw_observation_space(probe)
    finally:
        probe.close()
    _, agent_cls = get_algo(cfg.algo)
    agent = agent_cls(cfg.agent, info.with_num_envs(cfg.run.num_envs), np.random.default_rng(0))
    run = Run(cfg, agent, info, observation_space=space, maker=maker)
    run.quiet = quiet
    return run


class _Algorithm:
    """SB3's constructor for one rlnn algorithm: ``DQN("MlpPolicy", env, seed=0)`` is an untrained Run
    (``learn`` trains it) and ``DQN.load(path)`` is ``agents.load``. ``hyperparams`` are rlnn's config
    keys (``lr=1e-3``, ``agent.lr``, ``run.num_envs``: ``rlnn config ALGO`` lists them); the preset for
    (algo, env) applies underneath, as with ``agents.train``. ``verbose=0`` trains without progress."""

    algo = ""

    def __new__(cls, policy: str = "MlpPolicy", env: Any = "CartPole-v1", seed: int | None = None,
                verbose: int = 1, **hyperparams: Any) -> Run:
        if policy != "MlpPolicy":
            raise ValueError(f"policy={policy!r}: rlnn's networks are MLPs; use 'MlpPolicy'")
        return untrained(cls.algo, env, seed, hyperparams, quiet=verbose == 0)

    @staticmethod
    def load(path: str | os.PathLike, env: Any = None, **_sb3_only: Any) -> Run:
        return load(path, env=env)


class DQN(_Algorithm):
    algo = "dqn"


class PG(_Algorithm):
    algo = "pg"


class PPO(_Algorithm):
    algo = "ppo"


class SAC(_Algorithm):
    algo = "sac"
