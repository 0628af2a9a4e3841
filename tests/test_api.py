"""The script API (agents.train / load / Run) and the README's Python snippets, run as written."""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np
import pytest
from conftest import ROOT

import agents
import agents.api
from agents.config import ConfigError


@pytest.fixture
def short_budgets(monkeypatch):
    """Every run trains a twentieth of the steps it asks for: the snippets' presets, but seconds not minutes."""
    real = agents.api.train_loop

    def shortened(algo, run_cfg, *args, **kwargs):
        run_cfg = dataclasses.replace(run_cfg, total_steps=max(1, run_cfg.total_steps // 20), eval_every=500)
        return real(algo, run_cfg, *args, **kwargs)

    monkeypatch.setattr(agents.api, "train_loop", shortened)


def readme_snippets() -> list[str]:
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("index", range(len(readme_snippets())))
def test_readme_python_snippets_run(index, tmp_path, monkeypatch, short_budgets):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_snippets()[index], f"README.md snippet {index}", "exec"), namespace)
    if "run" in namespace:                      # the script API snippet
        run, pg = namespace["run"], namespace["pg"]
        assert run.run_dir.startswith("runs" + os.sep) and 4_000 <= run.step < 4_000 + run.config.run.num_envs
        assert isinstance(namespace["returns"], np.ndarray) and namespace["returns"].shape == (20,)
        assert isinstance(namespace["action"], int)
        assert pg.run_dir.startswith("my_runs" + os.sep) and pg.config.agent.lr == 1e-3
        # the pg preset applied under the user's changes (the default is 1 env)
        assert pg.config.run.num_envs == agents.config.presets()["cartpole_pg"]["run"]["num_envs"] > 1


def test_train_returns_a_run_whose_evals_and_predictions_match_the_loop(small_run, tmp_path):
    run = agents.train("pg", seed=3, total_steps=2_000, logdir=str(tmp_path), quiet=True,
                       set={"run.eval_every": 1_000, "run.eval_episodes": 3, "run.num_envs": 2})
    assert run.step >= 2_000 and run.status == "done" and [e.step for e in run.evals][:1] == [1_000]
    assert all(np.isfinite([e.mean, e.std, e.elapsed]).all() for e in run.evals)
    obs = np.random.default_rng(0).normal(size=(5, 4))
    batch, state = run.predict(obs, deterministic=True)
    assert state is None and batch.shape == (5,)
    assert [run.predict(o, deterministic=True)[0] for o in obs] == batch.tolist()
    again = agents.load(run.run_dir)
    assert again.step == run.step and again.evals == run.evals
    assert np.array_equal(again.predict(obs, deterministic=True)[0], batch)
    assert np.array_equal(again.evaluate(episodes=4, seed=1), run.evaluate(episodes=4, seed=1))


def test_resume_through_the_api_continues_the_same_run(tmp_path):
    run = agents.train("random", total_steps=600, logdir=str(tmp_path), quiet=True, set={"run.eval_every": 300})
    longer = agents.train(resume=run.run_dir, total_steps=1_200, quiet=True)
    assert longer.run_dir == run.run_dir and longer.step == 1_200
    assert [e.step for e in longer.evals] == [300, 600, 900, 1_200]
    with pytest.raises(ConfigError, match="seed cannot change"):
        agents.train(resume=run.run_dir, seed=3)


@pytest.mark.parametrize("kwargs,message", [
    ({"algo": "a2c"}, "unknown algorithm 'a2c'"),
    ({"algo": "pg", "env": "CartPol-v1"}, "did you mean CartPole-v1"),
    ({"algo": "pg", "set": {"agent.lr": -1.0}}, "agent.lr"),
])
def test_mistakes_are_one_line_value_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        agents.train(logdir=str(tmp_path), quiet=True, **kwargs)
    assert "\n" not in str(err.value)


def test_load_of_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(ValueError, match="not a run directory"):
        agents.load(str(tmp_path))
