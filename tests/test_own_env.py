"""A user's own env and the script API an SB3 user expects: env ids from a module, classes, factories and
instances; any observation space an MLP can take; learn/save/load/predict; best checkpoints; callbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import ROOT
from envs_for_tests import BrokenReset, GridDict, LineWalk, make_line_walk

import agents
import envs
from experiments.cli import main

TESTS = os.path.dirname(os.path.abspath(__file__))
SHORT = {"run.eval_every": 500, "run.eval_episodes": 3, "run.checkpoint_every": 500}


def fresh_python(code: str, cwd: str) -> str:
    """stdout of ``code`` run by a new interpreter (nothing of this process's imports or registry)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, TESTS])}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_module_env_id_trains_evaluates_and_loads_in_fresh_processes(tmp_path):
    """`rlnn train --env module:EnvId` from the module's folder (no PYTHONPATH), then eval and load elsewhere."""
    (tmp_path / "my_walk.py").write_text(open(os.path.join(TESTS, "envs_for_tests.py")).read().replace(
        '"LineWalk-v0"', '"MyWalk-v0"'))
    rlnn = os.path.join(os.path.dirname(sys.executable), "rlnn")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([rlnn, "train", "--algo", "DQN", "--env", "my_walk:MyWalk-v0", "--total-steps", "3000",
                           "--logdir", "runs", "--quiet", "--set", "exploration_steps=1500"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (name,) = os.listdir(tmp_path / "runs")
    assert name.startswith("MyWalk-v0__dqn__0__")
    run_dir = str(tmp_path / "runs" / name)
    assert json.load(open(os.path.join(run_dir, "config.json")))["run"]["env_id"] == "my_walk:MyWalk-v0"
    out = subprocess.run([rlnn, "eval", run_dir, "--episodes", "2"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "greedy return over 2 episodes -5.0" in out.stdout, out.stderr
    printed = fresh_python(f"import agents; run = agents.load({run_dir!r}); "
                           "print(run.predict(0, deterministic=True)[0], run.evaluate(2).tolist())", cwd=tmp_path)
    assert printed.split() == ["1", "[-5.0,", "-5.0]"]


@pytest.mark.parametrize("given", ["class", "factory", "instance", "entry point"])
def test_env_given_as_an_object_trains_and_evaluates(tmp_path, given):
    env = {"class": LineWalk, "factory": make_line_walk, "instance": make_line_walk(),
           "entry point": "envs_for_tests:make_line_walk"}[given]
    run = agents.train("dqn", env=env, total_steps=2_000, logdir=str(tmp_path), quiet=True,
                       set={**SHORT, "agent.exploration_steps": 1_000, "agent.learning_starts": 200})
    recorded = run.config.run.env_id
    assert recorded == {"class": "envs_for_tests:LineWalk", "factory": "envs_for_tests:make_line_walk",
                        "instance": "<instance of gymnasium.wrappers.common.TimeLimit>",
                        "entry point": "envs_for_tests:make_line_walk"}[given]
    assert run.evaluate(episodes=3).tolist() == [-5.0] * 3
    if given == "instance":
        with pytest.raises(envs.EnvError, match="one instance"):
            agents.train("dqn", env=env, total_steps=100, logdir=str(tmp_path), quiet=True, set={"run.num_envs": 2})
        with pytest.raises(envs.EnvError, match="cannot be rebuilt"):
            agents.load(run.run_dir).evaluate(1)            # no env=: the instance is not in the config
        assert agents.load(run.run_dir, env=env).evaluate(1).tolist() == [-5.0]
    else:                                                   # rebuilt from its "module:name"
        assert agents.load(run.run_dir).evaluate(1).tolist() == [-5.0]


def test_a_lambda_factory_cannot_be_rebuilt_by_name_and_says_what_to_do(tmp_path):
    run = agents.train("random", env=lambda: LineWalk(), total_steps=200, logdir=str(tmp_path), quiet=True)
    assert "<lambda>" in run.config.run.env_id
    loaded = agents.load(run.run_dir)
    assert loaded.predict(3)[0] in (0, 1)                    # acting needs no env
    with pytest.raises(envs.EnvError, match="cannot be rebuilt by name") as err:
        loaded.evaluate(1)
    assert "\n" not in str(err.value)


def test_gymnasiums_env_checker_runs_on_a_user_env_and_its_error_is_one_line(tmp_path, capsys):
    with pytest.raises(envs.EnvError, match="fails Gymnasium's check_env") as err:
        agents.train("random", env=BrokenReset, total_steps=100, logdir=str(tmp_path), quiet=True)
    assert "\n" not in str(err.value) and not os.path.exists(tmp_path / "runs")


@pytest.mark.parametrize("env_id, kwargs, raw_obs, flat_dim", [
    ("FrozenLake-v1", {"is_slippery": False}, 0, 16),          # Discrete: one-hot
    ("Blackjack-v1", {}, (14, 10, 0), 45),                     # Tuple of Discrete
    ("envs_for_tests:GridDict", {}, {"grid": np.eye(3, dtype=np.float32), "corner": 1}, 11),   # Dict of Box, Discrete
])
def test_structured_observations_are_flattened_and_predict_takes_them_raw(tmp_path, env_id, kwargs, raw_obs, flat_dim):
    run = agents.train("dqn", env=env_id, total_steps=600, logdir=str(tmp_path), quiet=True,
                       set={**SHORT, "run.env_kwargs": kwargs, "agent.learning_starts": 100})
    assert run.env_info.obs_dim == flat_dim
    action, state = run.predict(raw_obs, deterministic=True)
    assert state is None and isinstance(action, int)
    batch, _ = run.predict([raw_obs, raw_obs], deterministic=True)
    assert batch.tolist() == [action, action]
    flat = gym.spaces.flatten(run.observation_space, raw_obs if not isinstance(raw_obs, tuple) else raw_obs)
    assert action == int(run.agent.act(flat[None, :].astype(np.float64), greedy=True)[0])
    with pytest.raises(ValueError, match="not in the run's observation space"):
        run.predict({"a": 1})


def test_predict_normalizes_raw_observations_as_training_did(tmp_path):
    run = agents.train("dqn", env="MountainCar-v0", total_steps=800, logdir=str(tmp_path), quiet=True,
                       set={**SHORT, "run.normalize_obs": True, "agent.learning_starts": 100})
    env = run.make_env(1)
    normalized, _ = env.reset(seed=3)
    raw = envs.obs_normalizer(env).env.reset(seed=3)[0]         # the same reset, below the normalizer
    np.testing.assert_array_equal(envs.normalize_frozen(raw, run.env_state["norm/mean"], run.env_state["norm/var"]),
                                  normalized)
    q_raw = run.predict(raw[0], deterministic=True)[0]
    assert q_raw == int(run.agent.act(normalized, greedy=True)[0])


def test_predict_sampling_does_not_change_what_learn_trains(tmp_path):
    whole = agents.train("pg", total_steps=1_200, logdir=str(tmp_path / "a"), quiet=True, set=SHORT)
    half = agents.train("pg", total_steps=600, logdir=str(tmp_path / "b"), quiet=True, set=SHORT)
    for _ in range(5):
        half.predict(np.zeros(4))                              # draws from the policy, not the run's stream
    # learn(n) trains n more steps, as SB3's learn(n, reset_num_timesteps=False); the loop steps all envs at
    # once, so "the same run" is: to the step where the uninterrupted one stopped.
    assert half.learn(whole.step - half.step, quiet=True) is half and half.step == whole.step
    np.testing.assert_array_equal(half.agent.policy.flat_params, whole.agent.policy.flat_params)
    split = {e.step: e.mean for e in half.evals}              # and one more: the first session's final one
    assert {e.step: e.mean for e in whole.evals}.items() <= split.items()


def test_save_writes_one_file_that_loads_and_learns_in_a_fresh_process(tmp_path):
    run = agents.train("dqn", total_steps=1_000, logdir=str(tmp_path / "runs"), quiet=True, set=SHORT)
    path = run.save(tmp_path / "model")                        # SB3's habit: an extension is added
    assert path.endswith("model.npz") and os.path.isfile(path)
    obs = np.random.default_rng(0).normal(size=(4, 4))
    actions = run.predict(obs, deterministic=True)[0].tolist()
    code = ("import numpy as np, agents\n"
            "run = agents.load('model')\n"
            "print(run.predict(np.random.default_rng(0).normal(size=(4, 4)), deterministic=True)[0].tolist())\n"
            "run.learn(500, quiet=True, logdir='more')\n"
            "print(run.step, run.run_dir.startswith('more'))")
    first, second = fresh_python(code, cwd=str(tmp_path)).splitlines()
    step, moved = second.split()
    assert json.loads(first) == actions and moved == "True"
    assert run.step + 500 <= int(step) < run.step + 500 + run.config.run.num_envs   # a vector step's overshoot


def test_best_checkpoint_is_kept_and_eval_load_and_save_take_it(tmp_path, capsys):
    run = agents.train("dqn", total_steps=3_000, logdir=str(tmp_path), quiet=True,
                       set={**SHORT, "run.keep_checkpoints": 1})
    best_step = max(run.evals, key=lambda e: e.mean).step     # the first of equal bests
    best = agents.load(run.run_dir, checkpoint="best")
    assert best.step == best_step and os.path.isfile(os.path.join(run.run_dir, "checkpoints", "best.npz"))
    assert agents.load(run.save(tmp_path / "best.npz", checkpoint="best")).step == best_step
    assert main(["eval", run.run_dir, "--checkpoint", "best", "--episodes", "2"]) == 0
    assert f"step {best_step:,}, checkpoint best" in capsys.readouterr().out


def test_a_callback_sees_steps_and_evaluations_and_can_stop_the_run(tmp_path, capsys):
    seen = []

    def stop_after_two_evals(info):
        if info["eval"] is not None:
            seen.append(info["eval"].step)
        return len(seen) < 2

    run = agents.train("random", total_steps=5_000, logdir=str(tmp_path), set=SHORT, callback=stop_after_two_evals)
    assert seen == [500, 1_000] and run.step == 1_000 and run.status == "stopped"
    result = json.load(open(os.path.join(run.run_dir, "result.json")))
    assert result["stop_reason"] == "the callback returned False at step 1,000"
    assert "stopped early: the callback returned False at step 1,000" in capsys.readouterr().out


def test_stop_at_eval_return_says_why(tmp_path):
    run = agents.train("random", total_steps=5_000, logdir=str(tmp_path), quiet=True,
                       set={**SHORT, "run.stop_at_eval_return": -1e9})
    assert run.status == "target_reached" and run.step == 500
    assert run.stop_reason == "greedy eval {:.1f} >= run.stop_at_eval_return -1e+09 at step 500".format(run.evals[0].mean)


def test_an_sb3_snippet_runs_with_only_the_import_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snippet = """
import gymnasium as gym
from agents import DQN                       # SB3: from stable_baselines3 import DQN

env = gym.make("CartPole-v1")
model = DQN("MlpPolicy", env, verbose=0)
model.learn(total_timesteps=1_000)
model.save("dqn_cartpole")
del model
model = DQN.load("dqn_cartpole")
obs, info = env.reset(seed=0)
for _ in range(20):
    action, _states = model.predict(obs, deterministic=True)
    obs, reward, terminated, truncated, info = env.step(action)
    if terminated or truncated:
        obs, info = env.reset()
"""
    namespace: dict = {}
    exec(compile(snippet, "sb3 snippet", "exec"), namespace)
    assert namespace["model"].step >= 1_000 and os.path.isfile("dqn_cartpole.npz")


def test_algorithm_names_are_case_insensitive(tmp_path):
    assert agents.train("DQN", total_steps=300, logdir=str(tmp_path), quiet=True).config.algo == "dqn"
    assert main(["train", "--algo", "Random", "--total-steps", "100", "--logdir", str(tmp_path), "--quiet"]) == 0


def test_importing_rlnn_limits_blas_threads_unless_the_user_chose(tmp_path):
    code = "import agents; from threadpoolctl import threadpool_info; print(threadpool_info()[0]['num_threads'])"
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for user, expected in ((None, "1"), ("2", "2")):
        env = dict(clean, PYTHONPATH=ROOT, **({"OPENBLAS_NUM_THREADS": user} if user else {}))
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == expected, out.stderr


def test_compare_takes_a_module_env_without_a_threshold_and_still_reports(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([ROOT, TESTS]))      # the workers import the module too
    assert main(["compare", "--env", "envs_for_tests:LineWalk-v0", "--algos", "random", "--seeds", "2",
                 "--total-steps", "300", "--logdir", str(tmp_path), "--workers", "2"]) == 0
    (parent,) = [os.path.join(tmp_path, d) for d in os.listdir(tmp_path)]
    assert os.path.basename(parent).startswith("compare__LineWalk-v0__")
    summary = open(os.path.join(parent, "summary.md")).read()
    assert "no registered reward threshold" in summary and "| random | 0/2 | – | – |" in summary
    assert os.path.isfile(os.path.join(parent, "learning_curves.png"))
