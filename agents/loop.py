"""The one training loop: act -> env.step -> observe -> learn -> log -> evaluate -> checkpoint.

The loop owns the envs, the clock, the logger and checkpoints; the agent only acts and learns. Every
random number comes from one ``np.random.SeedSequence(seed)``, spawned into the agent's generator and
the seeds of the training and evaluation envs, so one seed fixes a whole run. A checkpoint holds the
complete state (agent, envs, counters, current observation), so stopping at step N and resuming gives
bit-for-bit the run that never stopped.

Step counting: ``step`` counts real env transitions. Under NEXT_STEP autoreset the step after an
episode ends only resets that sub-env; it is masked out (``valid``) and not counted. Within one vector
step the transitions are numbered in env order, and a finished episode is logged at the number of its
last transition, so every episode has its own point.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import envs
from agents import checkpoint as ckpt
from agents import get_algo
from agents.base import EnvInfo
from agents.logger import ConsoleSink, CSVSink, Logger, TensorBoardSink


@dataclass
class RunConfig:
    """What the loop does, independent of the algorithm (the TOML ``[run]`` table)."""

    env_id: str = "CartPole-v1"
    seed: int = 0
    total_steps: int = 100_000
    num_envs: int = 1
    normalize_obs: bool = False
    eval_every: int = 5_000
    eval_episodes: int = 10
    stop_at_eval_return: float | None = None
    checkpoint_every: int = 25_000
    keep_checkpoints: int = 3
    log_every: int = 1_000
    network_log_every: int = 5_000
    logdir: str = "runs"
    env_kwargs: dict = field(default_factory=dict)

    def validate(self) -> None:
        positive = ("total_steps", "num_envs", "eval_every", "checkpoint_every", "keep_checkpoints", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"run.{name} = {getattr(self, name)}: must be at least 1")
        for name in ("eval_episodes", "network_log_every", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"run.{name} = {getattr(self, name)}: must be 0 or more")


@dataclass
class EvalRecord:
    step: int
    elapsed: float
    mean: float
    std: float


@dataclass
class RunResult:
    run_dir: str
    step: int
    episodes: int
    status: str  # "done" | "target_reached" | "interrupted"
    evals: list[EvalRecord] = field(default_factory=list)
    episode_returns: list[tuple[int, float]] = field(default_factory=list)


class TrainingDiverged(RuntimeError):
    """A non-finite loss or parameter: the run stops, the last good checkpoint stays."""


class Interrupted(Exception):
    pass


def run_name(env_id: str, algo: str, seed: int, unix_time: int | None = None) -> str:
    """CleanRL's ``{env}__{algo}__{seed}__{time}``."""
    t = int(time.time()) if unix_time is None else unix_time
    return f"{env_id.replace('/', '-')}__{algo}__{seed}__{t}"


def seeds_for(seed: int) -> tuple[np.random.Generator, int, int]:
    """(agent generator, training env seed, evaluation env seed) from one SeedSequence."""
    agent_ss, env_ss, eval_ss = np.random.SeedSequence(seed).spawn(3)
    return (np.random.default_rng(agent_ss), int(env_ss.generate_state(1)[0] >> 1),
            int(eval_ss.generate_state(1)[0] >> 1))


def evaluate(agent, env, seed: int, max_steps: int = 100_000) -> np.ndarray:
    """Greedy returns of one episode per sub-env of ``env`` (reset with ``seed``)."""
    obs, _ = env.reset(seed=seed)
    n = env.num_envs
    returns = np.full(n, np.nan)
    for _ in range(max_steps):
        obs, _, _, _, info = env.step(agent.act(obs, greedy=True))
        if "_episode" in info:
            fresh = info["_episode"] & np.isnan(returns)
            returns[fresh] = info["episode"]["r"][fresh]
            if not np.isnan(returns).any():
                break
    return returns[~np.isnan(returns)]


def config_dict(algo: str, run_cfg: RunConfig, agent_cfg: Any) -> dict[str, Any]:
    return {"algo": algo, "run": dataclasses.asdict(run_cfg), "agent": dataclasses.asdict(agent_cfg)}


def hparam_value(v: Any) -> Any:
    """A value as TensorBoard's HPARAMS tab takes it: None, lists and dicts as JSON, anything else as it is."""
    return json.dumps(v) if v is None or isinstance(v, (list, tuple, dict)) else v


def hparams_of(cfg: dict[str, Any]) -> dict[str, Any]:
    flat = {"algo": cfg["algo"]}
    for section in ("run", "agent"):
        for k, v in cfg[section].items():
            flat[f"{section}.{k}"] = hparam_value(v)
    return flat


def markdown_table(hparams: dict[str, Any]) -> str:
    return "| parameter | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in hparams.items())


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, checkpoints and exits cleanly.
    A second Ctrl-C interrupts at once."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading_main():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(
    algo: str,
    run_cfg: RunConfig,
    agent_cfg: Any = None,
    run_dir: str | None = None,
    resume: bool = False,
    console: bool = True,
    stream=None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train ``algo`` as ``run_cfg`` says; log and checkpoint into ``run_dir`` (made if None).

    With ``resume=True`` the latest checkpoint of ``run_dir`` is loaded and training continues until
    ``run_cfg.total_steps``. Returns a RunResult; raises TrainingDiverged on a non-finite quantity.
    """
    config_cls, agent_cls = get_algo(algo)
    agent_cfg = config_cls() if agent_cfg is None else agent_cfg
    stream = stream or sys.stdout
    envs.check_env_id(run_cfg.env_id)

    agent_rng, env_seed, eval_seed = seeds_for(run_cfg.seed)
    env = envs.make_vec_env(run_cfg.env_id, run_cfg.num_envs, seed=env_seed, normalize_obs=run_cfg.normalize_obs,
                            **run_cfg.env_kwargs)
    envs.check_spaces(env.single_observation_space, env.single_action_space,
                      discrete_actions=getattr(agent_cls, "requires_discrete", True))
    eval_env = (envs.make_eval_env(run_cfg.env_id, run_cfg.eval_episodes, env, **run_cfg.env_kwargs)
                if run_cfg.eval_episodes > 0 else None)
    agent = agent_cls(agent_cfg, EnvInfo.from_env(env), agent_rng)

    obs, _ = env.reset(seed=env_seed)
    prev_done = np.zeros(env.num_envs, dtype=bool)
    step, episodes, elapsed_before = 0, 0, 0.0
    next_eval, next_ckpt, next_log = run_cfg.eval_every, run_cfg.checkpoint_every, run_cfg.log_every
    next_net_log = run_cfg.network_log_every
    cfg = config_dict(algo, run_cfg, agent_cfg)

    if resume:
        path = ckpt.latest_checkpoint(run_dir)
        meta, state = ckpt.load(path)
        if meta["algo"] != algo:
            raise ckpt.CheckpointError(f"{path}: checkpoint of algorithm {meta['algo']!r}, not {algo!r}")
        try:
            agent.load_state_dict(state["agent"])
        except (KeyError, ValueError) as e:
            raise ckpt.CheckpointError(f"{path}: does not match this agent ({e})") from None
        if not envs.load_env_state(env, ckpt.flatten(state["env"])):
            print(f"note: {run_cfg.env_id} cannot be restored exactly; its episodes restart", file=stream)
            obs, _ = env.reset(seed=env_seed + meta["step"])
            prev_done[:] = False
        else:
            obs = state["loop"]["obs"].copy()
            prev_done = state["loop"]["prev_done"].copy()
        step, episodes, elapsed_before = meta["step"], meta["episodes"], meta["elapsed"]
        next_eval, next_ckpt, next_log = meta["next_eval"], meta["next_ckpt"], meta["next_log"]
        next_net_log = meta.get("next_net_log", next_net_log)
    else:
        if run_dir is None:
            run_dir = os.path.join(run_cfg.logdir, run_name(run_cfg.env_id, algo, run_cfg.seed))
        os.makedirs(run_dir, exist_ok=True)
        write_json(os.path.join(run_dir, "config.json"), cfg)

    sinks: list = [TensorBoardSink(run_dir, resume_step=step if resume else None),
                   CSVSink(os.path.join(run_dir, "progress.csv"), resume_step=step if resume else None)]
    if console:
        sinks.append(ConsoleSink(run_cfg.total_steps, stream=stream))
    logger = Logger(sinks)
    if not resume:
        hp = hparams_of(cfg)
        logger.hparams(hp, start_time=time.time())
        logger.text("hyperparameters", markdown_table(hp), 0)
    if console:
        print(f"run: {run_dir}\nwatch: tensorboard --logdir {os.path.dirname(os.path.abspath(run_dir))}",
              file=stream, flush=True)

    result = RunResult(run_dir=run_dir, step=step, episodes=episodes, status="done")
    inspector = None
    if run_cfg.network_log_every > 0:
        from agents.network_stats import NetworkInspector

        inspector = NetworkInspector(agent)

    t0 = time.perf_counter()
    session_start_step = step
    last_metrics: dict[str, float] = {}

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def save_checkpoint() -> str:
        path = ckpt.checkpoint_path(run_dir, step)
        meta = {"algo": algo, "step": step, "episodes": episodes, "elapsed": elapsed(),
                "next_eval": next_eval, "next_ckpt": next_ckpt, "next_log": next_log,
                "next_net_log": next_net_log, "config": cfg}
        ckpt.save(path, meta, {"agent": agent.state_dict(), "env": envs.env_state(env),
                               "loop": {"obs": obs, "prev_done": prev_done}})
        ckpt.prune(run_dir, run_cfg.keep_checkpoints)
        return path

    def check_finite(metrics: dict[str, float]) -> None:
        for tag, value in metrics.items():
            if not math.isfinite(value):
                raise TrainingDiverged(f"step {step}: {tag} is {value}; stopped, last good checkpoint kept")
        for name, net in agent.networks().items():
            if not np.isfinite(net.flat_params).all():
                raise TrainingDiverged(f"step {step}: parameters of network {name!r} are not finite; "
                                       "stopped, last good checkpoint kept")

    try:
        with _StopFlag() as stop:
            while step < run_cfg.total_steps:
                if stop.signum is not None:
                    raise Interrupted
                actions = agent.act(obs)
                next_obs, rewards, terminated, truncated, info = env.step(actions)
                valid = ~prev_done
                agent.observe(obs, actions, rewards, next_obs, terminated, truncated, valid)
                prev_step = step
                step += int(np.count_nonzero(valid))
                prev_done = terminated | truncated
                obs = next_obs
                if "_episode" in info:
                    # The vector step's transitions are counted in env order, so two episodes ending in
                    # the same vector step get distinct steps (TensorBoard keeps one point per step).
                    transition_step = prev_step + np.cumsum(valid)
                    done_idx = np.flatnonzero(info["_episode"])
                    for i in done_idx:
                        r, length = float(info["episode"]["r"][i]), int(info["episode"]["l"][i])
                        at = int(transition_step[i])
                        logger.scalar("charts/episodic_return", r, at)
                        logger.scalar("charts/episodic_length", length, at)
                        result.episode_returns.append((at, r))
                    episodes += len(done_idx)

                metrics = agent.learn(step)
                if metrics:
                    last_metrics = metrics
                if step >= next_log:
                    next_log += run_cfg.log_every * max(1, math.ceil((step - next_log + 1) / run_cfg.log_every))
                    check_finite(last_metrics)
                    logger.scalars(last_metrics, step)
                    logger.scalar("charts/SPS", (step - session_start_step) / max(1e-9, time.perf_counter() - t0), step)
                    logger.scalar("charts/elapsed_seconds", elapsed(), step)
                if inspector is not None and step >= next_net_log:
                    next_net_log += run_cfg.network_log_every
                    inspector.log(logger, step)
                record = None
                if eval_env is not None and step >= next_eval:
                    next_eval += run_cfg.eval_every
                    record = _evaluate_and_log(agent, eval_env, env, eval_seed, step, elapsed(), logger)
                    result.evals.append(record)
                if step >= next_ckpt:
                    next_ckpt += run_cfg.checkpoint_every
                    check_finite(last_metrics)
                    save_checkpoint()
                if callback is not None:
                    callback({"step": step, "agent": agent, "metrics": metrics, "env": env, "obs": obs,
                              "eval": record})
                logger.tick()
                if record is not None and run_cfg.stop_at_eval_return is not None \
                        and record.mean >= run_cfg.stop_at_eval_return:
                    result.status = "target_reached"
                    break
        if eval_env is not None and (not result.evals or result.evals[-1].step != step):
            record = _evaluate_and_log(agent, eval_env, env, eval_seed, step, elapsed(), logger)
            result.evals.append(record)
            if callback is not None:
                callback({"step": step, "agent": agent, "metrics": {}, "env": env, "obs": obs, "eval": record})
        check_finite(last_metrics)
        save_checkpoint()
    except (Interrupted, KeyboardInterrupt):
        result.status = "interrupted"
        try:
            check_finite(last_metrics)
            path = save_checkpoint()
            print(f"\ninterrupted at step {step:,}: checkpoint {path}", file=stream)
        except TrainingDiverged:
            pass
    finally:
        logger.close()
        env.close()
        if eval_env is not None:
            eval_env.close()
        if console:
            print(f"events and checkpoints in {run_dir}", file=stream, flush=True)
    result.step, result.episodes = step, episodes
    write_json(os.path.join(run_dir, "result.json"), {
        "status": result.status, "step": step, "episodes": episodes, "total_steps": run_cfg.total_steps,
        "final_eval": dataclasses.asdict(result.evals[-1]) if result.evals else None})
    return result


def write_json(path: str, data: Any) -> None:
    """``data`` as indented JSON, written atomically (a temporary file, then ``os.replace``)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def _evaluate_and_log(agent, eval_env, train_env, eval_seed: int, step: int, elapsed: float, logger: Logger) -> EvalRecord:
    envs.sync_normalizer(eval_env, train_env)
    returns = evaluate(agent, eval_env, seed=(eval_seed + step) % 2**31)
    record = EvalRecord(step=step, elapsed=elapsed, mean=float(returns.mean()), std=float(returns.std()))
    logger.scalar("eval/episodic_return", record.mean, step)
    logger.scalar("eval/episodic_return_std", record.std, step)
    logger.scalar("charts/elapsed_seconds", elapsed, step)
    return record
