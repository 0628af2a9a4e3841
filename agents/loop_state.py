"""What the run loop carries: its state between two steps (a checkpoint's ``loop`` part), the result of a
session, and the seeds one run seed fans out to."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.config import RunConfig
from agents.rundir import CheckpointError, EvalRecord


@dataclass
class RunResult:
    run_dir: str
    step: int
    episodes: int
    status: str  # "done" | "target_reached" | "interrupted"
    evals: list[EvalRecord] = field(default_factory=list)
    episode_returns: list[tuple[int, float]] = field(default_factory=list)


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

    ARRAYS = ("obs", "prev_done")

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
        missing = [n for n in names if n not in (arrays if n in cls.ARRAYS else meta)]
        if missing:
            raise CheckpointError(f"{path}: loop state lacks {', '.join(missing)}")
        return cls(**{n: arrays[n].copy() if n in cls.ARRAYS else meta[n] for n in names})


def seeds_for(seed: int) -> tuple[np.random.Generator, int, int]:
    """(agent generator, training env seed, evaluation env seed) from one SeedSequence."""
    agent_ss, env_ss, eval_ss = np.random.SeedSequence(seed).spawn(3)
    return (np.random.default_rng(agent_ss), int(env_ss.generate_state(1)[0] >> 1),
            int(eval_ss.generate_state(1)[0] >> 1))
