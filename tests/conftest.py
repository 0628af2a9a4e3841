"""Shared fixtures: small run configs and a reader of TensorBoard event files."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# One BLAS thread, as every rlnn entry point uses: in-process runs then compute exactly what the
# `rlnn` subprocesses of the tests compute (BLAS thread counts change floating-point sums).
import experiments  # noqa: E402,F401


def wait_for(predicate, what: str, timeout: float = 120.0, proc=None) -> None:
    """Poll an observable state (a file appearing, a process gone) until it holds; never a fixed sleep.

    ``proc``: a subprocess.Popen that must stay alive meanwhile (its output is in the failure message).
    """
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended while waiting for {what}: {proc.communicate()[0]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def read_scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar point of a run, read with TensorBoard's own EventAccumulator (no sampling)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0, "histograms": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def accumulator(run_dir: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0, "histograms": 0})
    acc.Reload()
    return acc


def train_preset_briefly(algo: str, env_id: str, total_steps: int, logdir: str, eval_episodes: int = 5):
    """A preset's agent and envs on a short budget, evaluated once at the end: the loop's RunResult."""
    import dataclasses

    from agents import config
    from agents.loop import train

    cfg = config.build(algo, env_id)
    run = dataclasses.replace(cfg.run, total_steps=total_steps, eval_every=total_steps, eval_episodes=eval_episodes,
                              checkpoint_every=10**6, logdir=logdir)
    return train(algo, run, cfg.agent, console=False)


@pytest.fixture
def small_run(tmp_path):
    """A factory of short RunConfigs writing under tmp_path."""
    from agents.loop import RunConfig

    def make(**kw):
        base = dict(total_steps=2_000, eval_every=1_000, eval_episodes=3, checkpoint_every=1_000,
                    log_every=250, logdir=str(tmp_path / "runs"))
        base.update(kw)
        return RunConfig(**base)

    return make
