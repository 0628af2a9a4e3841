"""Every preset loads, validates, and trains a short while with finite losses."""

from __future__ import annotations

import math

import pytest
from conftest import read_scalars

from agents import config
from agents.loop import train

PRESETS = config.presets()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_trains_briefly_with_finite_losses(name, tmp_path):
    doc = PRESETS[name]
    sets = {"run.eval_episodes": 2, "run.eval_every": 1_000, "run.log_every": 250}
    if doc["algo"] in ("pg", "ppo"):     # a rollout short enough for updates within the 2k steps (LunarLander's is 16k)
        sets["agent.rollout_steps"] = min(doc["agent"].get("rollout_steps", 64), 32)
    if "learning_starts" in doc["agent"]:   # off-policy: learning begins within the 2k steps
        sets["agent.learning_starts"] = min(doc["agent"]["learning_starts"], 500)
    cfg = config.build(doc["algo"], doc["run"]["env_id"], sets=sets,
                       overrides={"total_steps": 2_000, "logdir": str(tmp_path)})
    assert cfg.preset == name
    result = train(cfg.algo, cfg.run, cfg.agent, console=False)
    assert result.step >= 2_000 and result.evals
    losses = {tag: points for tag, points in read_scalars(result.run_dir).items() if tag.startswith("losses/")}
    assert losses and all(math.isfinite(v) for points in losses.values() for _, v in points)
