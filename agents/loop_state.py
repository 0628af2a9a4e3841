"""What the run loop carries: its state between two steps (a checkpoint's ``loop`` part), the result of a
session, the seeds one run seed fans out to, and a checkpoint read back (``Checkpoint``: what a resumed
session and a loaded model are both built from)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import envs
from agents.base import EnvInfo
from agents.config import RunConfig, TrainConfig
from agents.rundir import CheckpointError, EvalRecord
from rlnn.checkpoint import flatten


@dataclass
class RunResult:
    run_dir: str
    step: int
    episodes: int
    status: str  # "done" | "target_reached" | "stopped" (by a callback) | "interrupted"
    evals: list[EvalRecord] = field(default_factory=list)
    episode_returns: list[tuple[int, float]] = field(default_factory=list)
    stop_reason: str = ""        # why the session ended, in words (console, result.json)


@dataclass
class LoopState:
    """The loop's whole state between two vector steps; a checkpoint's ``loop`` metadata and arrays."""

    step: int                # real env transitions so far (the run's one env-step counter)
    episodes: int            # finished training episodes
    elapsed: float           # training seconds of the sessions before this one
    next_eval: int           # the step at or after which the next greedy evaluation runs
    next_ckpt: int
    next_log: int
    next_net_log: int
    obs: np.ndarray          # (n, d) the current observations
    prev_done: np.ndarray    # (n,) bool: sub-env i ended an episode on the last step (next row is a reset)
    best_eval: float | None = None   # the best greedy evaluation so far (checkpoints/best.npz holds it)

    ARRAYS = ("obs", "prev_done")
    OPTIONAL = ("best_eval",)        # absent from checkpoints written before it existed

    @classmethod
    def start(cls, run_cfg: RunConfig, obs: np.ndarray) -> "LoopState":
        return cls(step=0, episodes=0, elapsed=0.0, next_eval=run_cfg.eval_every,
                   next_ckpt=run_cfg.checkpoint_every, next_log=run_cfg.log_every,
                   next_net_log=run_cfg.network_log_every, obs=obs,
                   prev_done=np.zeros(len(obs), dtype=bool))

    def meta(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self.ARRAYS}

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    @classmethod
    def from_checkpoint(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], path: str) -> "LoopState":
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in (arrays if n in cls.ARRAYS else meta) and n not in cls.OPTIONAL]
        if missing:
            raise CheckpointError(f"{path}: loop state lacks {', '.join(missing)}")
        return cls(**{n: arrays[n].copy() if n in cls.ARRAYS else meta[n] for n in names
                      if n in arrays or n in meta})


def seeds_for(seed: int) -> tuple[np.random.Generator, int, int]:
    """(agent generator, training env seed, evaluation env seed) from one SeedSequence."""
    agent_ss, env_ss, eval_ss = np.random.SeedSequence(seed).spawn(3)
    return (np.random.default_rng(agent_ss), int(env_ss.generate_state(1)[0] >> 1),
            int(eval_ss.generate_state(1)[0] >> 1))


@dataclass
class Checkpoint:
    """A run checkpoint read back: its config, the env it was trained on, and its arrays.

    ``meta``/``arrays`` as ``agents.rundir.read_checkpoint`` returns them. A resumed session and a loaded
    model (``agents.load``) both restore an agent from here, with the same checks.
    """

    path: str
    meta: dict[str, Any]
    arrays: dict[str, Any]

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.meta.get("config"), self.path)

    @property
    def step(self) -> int:
        return int(self.meta.get("loop", {}).get("step", 0))

    @property
    def env_info(self) -> EnvInfo | None:
        """The agent's ``EnvInfo`` as trained, or None in checkpoints written before it was recorded."""
        info = self.meta.get("env", {}).get("info")
        return None if info is None else EnvInfo.from_dict(info)

    @property
    def observation_space(self):
        """The env's own observation space (before flattening), or None in older checkpoints."""
        space = self.meta.get("env", {}).get("observation_space")
        return None if space is None else envs.space_from_dict(space)

    @property
    def env_state(self) -> dict[str, np.ndarray]:
        """The flat ``envs.env_state`` dict ("/" keys, stored nested)."""
        return flatten(self.arrays.get("env", {}))

    def loop_state(self) -> LoopState:
        return LoopState.from_checkpoint(self.meta.get("loop", {}), self.arrays.get("loop", {}), self.path)

    def restore_agent(self, agent, algo: str) -> None:
        """Load the agent's arrays into ``agent`` of ``algo`` (built from the same config and env);
        CheckpointError naming the file when they do not fit it."""
        if self.meta.get("algo") != algo:
            raise CheckpointError(f"{self.path}: checkpoint of algorithm {self.meta.get('algo')!r}, not {algo!r}")
        try:
            agent.load_state_dict(self.arrays["agent"])
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{self.path}: does not match the run's agent ({e})") from None
