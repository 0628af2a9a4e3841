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
    """Every new run trains a twentieth of the steps it asks for: the snippets' presets, but seconds not
    minutes (a resume, such as ``run.learn(n)``, trains what it asks)."""
    real = agents.api.train_loop

    def shortened(algo, run_cfg, *args, **kwargs):
        if not kwargs.get("resume"):
            run_cfg = dataclasses.replace(run_cfg, total_steps=max(1, run_cfg.total_steps // 20), eval_every=500)
        return real(algo, run_cfg, *args, **kwargs)

    monkeypatch.setattr(agents.api, "train_loop", shortened)


def readme_blocks(lang: str) -> list[str]:
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(rf"```{lang}\n(.*?)```", f.read(), flags=re.S)


def readme_modules() -> dict[str, str]:
    """The README's Python blocks that are files (first line ``# name.py``): {name.py: source}."""
    return {m.group(1): block for block in readme_blocks("python") if (m := re.match(r"# (\w+\.py)\n", block))}


def readme_snippets() -> list[str]:
    """The README's other Python blocks: scripts, run as written."""
    return [block for block in readme_blocks("python") if not re.match(r"# \w+\.py\n", block)]


def in_readme_dir(tmp_path, monkeypatch) -> None:
    """A fresh working directory holding the README's modules, importable as the README says."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, source in readme_modules().items():
        (tmp_path / name).write_text(source)


@pytest.mark.parametrize("index", range(len(readme_snippets())))
def test_readme_python_snippets_run(index, tmp_path, monkeypatch, short_budgets):
    in_readme_dir(tmp_path, monkeypatch)
    namespace: dict = {}
    code = readme_snippets()[index]
    exec(compile(code, f"README.md snippet {index}", "exec"), namespace)
    if "pg" in namespace:                       # the script API's tour
        run, pg = namespace["run"], namespace["pg"]
        assert os.path.exists("cartpole_dqn.npz") and run.run_dir is None and run.config.algo == "dqn"
        assert run.step >= 10_000 + agents.config.presets()["cartpole_dqn"]["run"]["total_steps"] // 20
        assert isinstance(namespace["returns"], np.ndarray) and namespace["returns"].shape == (20,)
        assert isinstance(namespace["action"], int)
        assert pg.run_dir.startswith("my_runs" + os.sep) and pg.config.agent.lr == 1e-3
        # the pg preset applied under the user's changes (the default is 1 env)
        assert pg.config.run.num_envs == agents.config.presets()["cartpole_pg"]["run"]["num_envs"] > 1
    elif "model" in namespace:                  # SB3's own shape
        assert namespace["action"] in (0, 1) and os.path.exists("dqn_cartpole.npz")
    elif "run" in namespace and namespace["run"].config.algo == "sac":
        action = namespace["action"]
        assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    elif "run" in namespace:
        assert namespace["run"].step > 0 and isinstance(namespace["action"], int)


def test_readme_own_env_example_runs_as_written_and_learns(tmp_path, monkeypatch):
    # The "Your own environment" section at its full budget: the module, the shell lines that train and
    # evaluate it, and the script; the README says the greedy walk takes the shortest path (-7).
    import subprocess
    import sys

    in_readme_dir(tmp_path, monkeypatch)
    rlnn = [sys.executable, "-m", "experiments.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT])}
    train_line = next(line for block in readme_blocks("sh") for line in block.splitlines()
                      if "train --algo dqn --env line_walk:LineWalk-v0" in line)
    args = train_line.split("rlnn ", 1)[1].split("#")[0].split()
    done = subprocess.run([*rlnn, *args, "--quiet"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (run_dir,) = [d for d in os.listdir("runs") if d.startswith("LineWalk-v0__dqn__0__")]
    shown = subprocess.run([*rlnn, "eval", os.path.join("runs", run_dir), "--episodes", "3"], env=env,
                           capture_output=True, text=True)
    assert shown.returncode == 0 and "-7" in shown.stdout, shown.stdout + shown.stderr
    (script,) = [s for s in readme_snippets() if "from line_walk import LineWalk" in s]
    namespace: dict = {}
    exec(compile(script, "README.md own env script", "exec"), namespace)
    assert namespace["action"] == 1 and namespace["same"].predict(0, deterministic=True)[0] == 1
    np.testing.assert_array_equal(namespace["run"].evaluate(episodes=5), -7.0)


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
